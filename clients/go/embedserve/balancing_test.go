package embedserve_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/embedserve/embedserve/clients/go/embedserve"
)

// peerCounter counts the unary calls each server answered.
type peerCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (p *peerCounter) intercept(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var answered peer.Peer
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&answered))...)
	if err == nil && answered.Addr != nil {
		p.mu.Lock()
		p.counts[answered.Addr.String()]++
		p.mu.Unlock()
	}
	return err
}

func (p *peerCounter) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Two real servers behind one "host:port,host:port" target: round_robin spreads
// the Embed calls over both, and after one server stops the calls go on. The
// second server is EMBEDSERVE_TEST_TARGET_2 when set (then it is not stopped),
// else one started here.
func TestRoundRobinAcrossTwoServers(t *testing.T) {
	second := os.Getenv("EMBEDSERVE_TEST_TARGET_2")
	stopSecond := func() {}
	stopped := false
	if second == "" {
		var err error
		if stopSecond, second, err = startServer(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if !stopped {
				stopSecond()
			}
		}()
	}

	counter := &peerCounter{counts: map[string]int{}}
	client, err := embedserve.Dial(target+","+second,
		embedserve.WithDialOptions(grpc.WithChainUnaryInterceptor(counter.intercept)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Second)
	defer cancel()

	for i := 0; i < 20; i++ {
		if _, err := client.Embed(ctx, []string{"round robin"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	counts := counter.snapshot()
	if len(counts) != 2 || counts[target] < 5 || counts[second] < 5 {
		t.Fatalf("20 calls over %s and %s were spread as %v", target, second, counts)
	}

	if os.Getenv("EMBEDSERVE_TEST_TARGET_2") != "" {
		return // not ours to stop
	}
	stopSecond() // SIGTERM: it drains and exits
	stopped = true
	for i := 0; i < 10; i++ {
		if _, err := client.Embed(ctx, []string{"after the stop"}); err != nil {
			t.Fatalf("call %d after %s stopped: %v", i, second, err)
		}
	}
	if after := counter.snapshot(); after[target] < counts[target]+10 {
		t.Fatalf("calls after the stop did not all go to %s: %v", target, after)
	}
}

func TestBalancedTargetNeedsPorts(t *testing.T) {
	_, err := embedserve.Dial("127.0.0.1:1,localhost")
	if err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("a target without a port was accepted or not named: %v", err)
	}
}
