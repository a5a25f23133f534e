package embedserve_test

// Ingest against an in-process fake VectorService (no model): a failure after
// some acknowledgements, and answers that break the protocol.

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// fakeIngest acknowledges the first okBatches messages, then ends the call
// with failure (at once with failEarly, else when the next message comes);
// mangle may alter each acknowledgement.
type fakeIngest struct {
	pb.UnimplementedVectorServiceServer
	okBatches int
	failure   error
	failEarly bool
	mangle    func(*pb.IngestStreamResponse)
	received  chan *pb.IngestStreamRequest
}

func (f *fakeIngest) IngestStream(stream grpc.BidiStreamingServer[pb.IngestStreamRequest, pb.IngestStreamResponse]) error {
	var total uint64
	for n := 0; ; n++ {
		request, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f.received <- request
		if n == f.okBatches {
			return f.failure
		}
		ack := &pb.IngestStreamResponse{BatchId: request.GetBatchId(), TotalAcknowledged: total}
		for _, doc := range request.GetDocuments() {
			ack.Ids = append(ack.Ids, doc.GetId())
		}
		total += uint64(len(ack.Ids))
		ack.TotalAcknowledged = total
		if f.mangle != nil {
			f.mangle(ack)
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
		if f.failEarly && n+1 == f.okBatches {
			return f.failure
		}
	}
}

// serveFake serves fake as the VectorService on a loopback port, and dials it.
func serveFake(t *testing.T, fake pb.VectorServiceServer) *embedserve.Client {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	pb.RegisterVectorServiceServer(server, fake)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	client, err := embedserve.Dial(listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func docsNumbered(n int) []embedserve.Document {
	docs := make([]embedserve.Document, n)
	for i := range docs {
		docs[i] = embedserve.Document{ID: fmt.Sprint("doc-", i), Text: fmt.Sprint("text ", i)}
	}
	return docs
}

func TestIngestFailureAfterAcknowledgements(t *testing.T) {
	fake := &fakeIngest{okBatches: 2, failure: status.Error(codes.Unavailable, "store down"), received: make(chan *pb.IngestStreamRequest, 100)}
	client := serveFake(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var acks []embedserve.Ack
	var last error
	for ack, err := range client.Ingest(ctx, "c", slices.Values(docsNumbered(25)), embedserve.WithBatchSize(5), embedserve.WithMaxInFlight(2), embedserve.WithStoreText(true)) {
		if err != nil {
			if last != nil {
				t.Fatalf("a second error after %v: %v", last, err)
			}
			last = err
			continue
		}
		acks = append(acks, ack)
	}
	if len(acks) != 2 || acks[1].TotalAcknowledged != 10 || !slices.Equal(acks[1].IDs, []string{"doc-5", "doc-6", "doc-7", "doc-8", "doc-9"}) {
		t.Fatalf("acknowledgements before the failure: %+v", acks)
	}
	if status.Code(last) != codes.Unavailable || status.Convert(last).Message() != "store down" {
		t.Fatalf("ended with %v, want the server's Unavailable status", last)
	}
	first := <-fake.received
	if first.GetCollection() != "c" || first.GetBatchId() != "0" || len(first.GetDocuments()) != 5 || !first.GetOptions().GetStoreText() {
		t.Fatalf("first message: %v", first)
	}
	if second := <-fake.received; second.GetBatchId() != "1" {
		t.Fatalf("second message: batch_id %q", second.GetBatchId())
	}
}

func TestIngestRejectsAcknowledgementsThatDoNotMatch(t *testing.T) {
	for name, mangle := range map[string]func(*pb.IngestStreamResponse){
		"batch id": func(ack *pb.IngestStreamResponse) { ack.BatchId = "7" },
		"ids":      func(ack *pb.IngestStreamResponse) { ack.Ids = ack.Ids[1:] },
	} {
		t.Run(name, func(t *testing.T) {
			fake := &fakeIngest{okBatches: 100, mangle: mangle, received: make(chan *pb.IngestStreamRequest, 100)}
			client := serveFake(t, fake)
			acks := 0
			var last error
			for _, err := range client.Ingest(context.Background(), "c", slices.Values(docsNumbered(10)), embedserve.WithBatchSize(2)) {
				if err != nil {
					last = err
					continue
				}
				acks++
			}
			if acks != 0 || last == nil {
				t.Fatalf("%d acknowledgements, error %v; want an error at once", acks, last)
			}
		})
	}
}

// stalledDocuments is a producer that hands out n documents and then waits
// (a live tail with nothing new), until the test ends.
func stalledDocuments(t *testing.T, n int) iter.Seq[embedserve.Document] {
	ch := make(chan embedserve.Document, n)
	for _, doc := range docsNumbered(n) {
		ch <- doc
	}
	t.Cleanup(func() { close(ch) })
	return embedserve.FromChannel(ch)
}

// ingestWithin runs the whole ingestion (onAck sees each acknowledgement)
// and fails the test if it has not ended within limit.
func ingestWithin(t *testing.T, limit time.Duration, seq iter.Seq2[embedserve.Ack, error], onAck func(embedserve.Ack)) (acks int, last error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ack, err := range seq {
			if err != nil {
				last = err
				continue
			}
			acks++
			onAck(ack)
		}
	}()
	select {
	case <-done:
		return acks, last
	case <-time.After(limit):
		t.Fatalf("Ingest still running after %v", limit)
		return 0, nil
	}
}

// The producer has given one full batch and waits for more: the context's
// deadline or cancellation still ends the call, after the acknowledgement.
func TestIngestEndsWithItsContextWhileTheProducerWaits(t *testing.T) {
	for _, tc := range []struct {
		name string
		want codes.Code
	}{{"deadline", codes.DeadlineExceeded}, {"cancel", codes.Canceled}} {
		t.Run(tc.name, func(t *testing.T) {
			client := serveFake(t, &fakeIngest{okBatches: 100, received: make(chan *pb.IngestStreamRequest, 100)})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if tc.want == codes.DeadlineExceeded {
				ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
			}
			defer cancel()
			seq := client.Ingest(ctx, "c", stalledDocuments(t, 3), embedserve.WithBatchSize(2))
			acks, last := ingestWithin(t, 10*time.Second, seq, func(embedserve.Ack) {
				if tc.want == codes.Canceled {
					cancel()
				}
			})
			if acks != 1 || status.Code(last) != tc.want {
				t.Fatalf("%d acknowledgements, then %v; want 1, then %v", acks, last, tc.want)
			}
		})
	}
}

// A server that fails while nothing awaits an acknowledgement ends the call
// at once, though the producer waits.
func TestIngestSeesTheServerFailWhileTheProducerWaits(t *testing.T) {
	fake := &fakeIngest{okBatches: 1, failEarly: true, failure: status.Error(codes.Unavailable, "store down"), received: make(chan *pb.IngestStreamRequest, 100)}
	client := serveFake(t, fake)
	seq := client.Ingest(context.Background(), "c", stalledDocuments(t, 3), embedserve.WithBatchSize(2))
	acks, last := ingestWithin(t, 10*time.Second, seq, func(embedserve.Ack) {})
	if acks != 1 || status.Code(last) != codes.Unavailable {
		t.Fatalf("%d acknowledgements, then %v; want 1, then Unavailable", acks, last)
	}
}

// Breaking out of the loop while the producer waits: once it hands over its
// next document, its yield returns false (nothing is left blocked).
func TestIngestBreakReleasesAWaitingProducer(t *testing.T) {
	client := serveFake(t, &fakeIngest{okBatches: 100, received: make(chan *pb.IngestStreamRequest, 100)})
	release := make(chan struct{})
	stopped := make(chan int, 1) // documents handed over after the release
	producer := func(yield func(embedserve.Document) bool) {
		for _, doc := range docsNumbered(2) {
			if !yield(doc) {
				stopped <- -1
				return
			}
		}
		<-release
		for i, doc := range docsNumbered(100) {
			if !yield(doc) {
				stopped <- i + 1
				return
			}
		}
		stopped <- 0
	}
	for _, err := range client.Ingest(context.Background(), "c", producer, embedserve.WithBatchSize(2)) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	close(release)
	select {
	case n := <-stopped:
		if n <= 0 {
			t.Fatalf("producer: %d (want its yield to return false after the release)", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the producer is still blocked 10 s after the loop ended")
	}
}
