package embedserve_test

// Connection options, checked against an in-process TLS server (no model).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// recorder answers GetModelInfo and remembers what the call carried.
type recorder struct {
	pb.UnimplementedEmbeddingServiceServer
	authorization []string
	deadline      time.Duration
}

func (r *recorder) GetModelInfo(ctx context.Context, _ *pb.GetModelInfoRequest) (*pb.GetModelInfoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.authorization = md.Get("authorization")
	if deadline, ok := ctx.Deadline(); ok {
		r.deadline = time.Until(deadline)
	}
	return &pb.GetModelInfoResponse{ModelId: "fake", Dimensions: 3}, nil
}

// selfSigned writes a certificate for 127.0.0.1/localhost to dir and returns
// it with the server's TLS configuration.
func selfSigned(t *testing.T, dir string) (caFile string, serverTLS *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "embedserve test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return caFile, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func TestTLSAPIKeyAndDefaultDeadline(t *testing.T) {
	caFile, serverTLS := selfSigned(t, t.TempDir())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
	rec := &recorder{}
	pb.RegisterEmbeddingServiceServer(server, rec)
	go server.Serve(listener)
	defer server.Stop()

	client, err := embedserve.Dial(listener.Addr().String(),
		embedserve.WithTLSFromCAFile(caFile, ""),
		embedserve.WithAPIKey("secret-key"),
		embedserve.WithTimeout(7*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	info, err := client.ModelInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetModelId() != "fake" {
		t.Fatalf("model id %q", info.GetModelId())
	}
	if len(rec.authorization) != 1 || rec.authorization[0] != "Bearer secret-key" {
		t.Fatalf("authorization metadata %q", rec.authorization)
	}
	if rec.deadline <= 5*time.Second || rec.deadline > 7*time.Second {
		t.Fatalf("server saw a deadline %v away, want about 7s", rec.deadline)
	}

	// A plaintext client cannot talk to the TLS server.
	plain, err := embedserve.Dial(listener.Addr().String(), embedserve.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.ModelInfo(context.Background()); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call to a TLS server: %v, want Unavailable", err)
	}
}

// Several addresses of one TLS server, with and without a server name for TLS
// to check: each connects as a single address does (a server name used to
// clash with the first address, set as the :authority).
func TestBalancedTLSWithServerName(t *testing.T) {
	caFile, serverTLS := selfSigned(t, t.TempDir())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
	pb.RegisterEmbeddingServiceServer(server, &recorder{})
	go server.Serve(listener)
	defer server.Stop()

	addr := listener.Addr().String()
	for _, serverName := range []string{"localhost", "127.0.0.1", ""} {
		for _, target := range []string{addr, addr + "," + addr} {
			client, err := embedserve.Dial(target,
				embedserve.WithTLSFromCAFile(caFile, serverName), embedserve.WithTimeout(10*time.Second))
			if err != nil {
				t.Fatalf("target %q, server name %q: Dial: %v", target, serverName, err)
			}
			info, err := client.ModelInfo(context.Background())
			client.Close()
			if err != nil || info.GetModelId() != "fake" {
				t.Fatalf("target %q, server name %q: ModelInfo %v, %v", target, serverName, info, err)
			}
		}
	}
}

func TestBadCAFile(t *testing.T) {
	if _, err := embedserve.Dial("127.0.0.1:1", embedserve.WithTLSFromCAFile(filepath.Join(t.TempDir(), "missing.pem"), "")); err == nil {
		t.Fatal("Dial accepted a missing CA file")
	}
}

// A key no header can carry (a line break read from a file with it) is refused
// at Dial, without repeating the key; every call failed with Internal before.
func TestAPIKeyThatIsNotPrintableASCIIIsRefused(t *testing.T) {
	for key, want := range map[string]string{
		"secret\n": "control character (a line break?) at byte 6",
		"clé":      "non-ASCII character at byte 2",
	} {
		_, err := embedserve.Dial("127.0.0.1:1", embedserve.WithAPIKey(key))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), key) {
			t.Errorf("key %q: Dial error %v, want one naming %q and not the key", key, err, want)
		}
	}
}

// A negative batch size or in-flight bound fails the call before anything is
// sent (no server listens here: a call that went out would be Unavailable); 0
// keeps the default.
func TestNegativeBatchSizeAndMaxInFlightAreRefused(t *testing.T) {
	client, err := embedserve.Dial("127.0.0.1:1", embedserve.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	for _, opt := range []struct {
		name   string
		option embedserve.EmbedOption
	}{
		{"WithBatchSize", embedserve.WithBatchSize(-1)},
		{"WithMaxInFlight", embedserve.WithMaxInFlight(-1)},
	} {
		refused := func(call string, err error) {
			t.Helper()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), opt.name+" needs at least 1") {
				t.Fatalf("%s with %s(-1): %v, want InvalidArgument naming it", call, opt.name, err)
			}
		}
		_, err := client.Embed(ctx, []string{"x"}, opt.option)
		refused("Embed", err)
		_, err = client.EmbedQuantized(ctx, []string{"x"}, pb.Precision_PRECISION_INT8, opt.option)
		refused("EmbedQuantized", err)
		err = nil
		for _, err = range client.EmbedStream(ctx, embedserve.Batches([]string{"x"}, 1), opt.option) {
		}
		refused("EmbedStream", err)
		err = nil
		for _, err = range client.Ingest(ctx, "c", slices.Values([]embedserve.Document{{ID: "1", Text: "x"}}), opt.option) {
		}
		refused("Ingest", err)
		_, err = client.Upsert(ctx, "c", []embedserve.Document{{ID: "1", Text: "x"}}, opt.option)
		refused("Upsert", err)
	}
	// 0 keeps the defaults: the call goes out and finds no server.
	if _, err := client.Embed(ctx, []string{"x"}, embedserve.WithBatchSize(0), embedserve.WithMaxInFlight(0)); status.Code(err) != codes.Unavailable {
		t.Fatalf("Embed with 0s: %v, want Unavailable", err)
	}
}
