// Package embedserve is a thin Go client for the embedserve gRPC embedding server.
//
//	client, err := embedserve.Dial("127.0.0.1:50051")
//	if err != nil { ... }
//	defer client.Close()
//	vectors, err := client.Embed(ctx, []string{"first text", "second text"})
//
// Failed calls return the server's gRPC status error unchanged, so
// status.Code(err) gives codes.InvalidArgument, codes.DeadlineExceeded, ...
// A string that is not UTF-8, anywhere in a request (the stubs' too), is
// refused before sending with codes.InvalidArgument naming where it is ("text
// 3 is not UTF-8 (byte 0xff at byte offset 7)", "collection is not UTF-8
// (...)"), where protobuf would fail the call as codes.Internal naming nothing.
//
// The same client talks to the VectorService: collections (CreateCollection,
// ...), acknowledged streaming ingestion (Ingest), Search, Recommend, Get,
// Delete and Count.
//
// The generated stubs live in package embedservev1; Client.Stub and
// Client.VectorStub give the raw service clients (sharing the client's
// connection, API key and default deadline) for the calls this package does
// not wrap.
package embedserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// DefaultTimeout is the per-call deadline of unary calls whose context has none.
const DefaultTimeout = 300 * time.Second

// maxMessageBytes bounds the size of messages sent and received (large
// batches of wide vectors exceed grpc-go's 4 MiB default).
const maxMessageBytes = 256 << 20

// Option configures Dial.
type Option func(*dialConfig) error

type dialConfig struct {
	tls         *tls.Config
	apiKey      string
	timeout     time.Duration
	dialOptions []grpc.DialOption
}

// WithTLS connects over TLS with the given configuration (nil: the system's
// root CAs).
func WithTLS(config *tls.Config) Option {
	return func(c *dialConfig) error {
		if config == nil {
			config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.tls = config
		return nil
	}
}

// WithTLSFromCAFile connects over TLS and trusts the PEM certificates in
// caFile. serverName overrides the name checked against the server's
// certificate; leave it empty to use the target's host name.
func WithTLSFromCAFile(caFile, serverName string) Option {
	return func(c *dialConfig) error {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("embedserve: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("embedserve: no PEM certificates in %s", caFile)
		}
		c.tls = &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
		return nil
	}
}

// WithAPIKey sends "authorization: Bearer <key>" metadata on every call.
// Use it together with TLS outside a trusted network. A key is printable
// ASCII: Dial refuses one with another character (a line break read from a
// file, say), which every call would otherwise fail with INTERNAL.
func WithAPIKey(key string) Option {
	return func(c *dialConfig) error {
		for position, char := range key {
			if char < ' ' || char > '~' {
				kind := "control character (a line break?)"
				if char > 0x7f {
					kind = "non-ASCII character"
				}
				// The key itself is not repeated: it is a secret.
				return fmt.Errorf("embedserve: the API key has a %s at byte %d; a key is printable ASCII", kind, position)
			}
		}
		c.apiKey = key
		return nil
	}
}

// WithTimeout sets the deadline given to unary calls whose context has none
// (default DefaultTimeout; 0 disables it). Streams are bounded only by their
// context.
func WithTimeout(d time.Duration) Option {
	return func(c *dialConfig) error {
		c.timeout = d
		return nil
	}
}

// WithDialOptions adds raw grpc.DialOptions (interceptors, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) error {
		c.dialOptions = append(c.dialOptions, opts...)
		return nil
	}
}

// Client calls an embedserve server. It is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	stub    pb.EmbeddingServiceClient
	vectors pb.VectorServiceClient
	health  healthpb.HealthClient
	timeout time.Duration
}

// Dial creates a client for target ("host:port" or any gRPC target such as
// "dns:///embed.example.com:443"). Several servers, "host:port,host:port", or a
// "dns:///" target get round_robin balancing, and idempotent calls (Embed,
// Search, Get, Count, ...) are retried on UNAVAILABLE. The connection is made
// lazily, on the first call; use WaitUntilServing to wait for the model to be ready.
func Dial(target string, opts ...Option) (*Client, error) {
	cfg := dialConfig{timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	transport := insecure.NewCredentials()
	if cfg.tls != nil {
		transport = credentials.NewTLS(cfg.tls)
	}
	dialOptions := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
		),
		grpc.WithUnaryInterceptor(deadlineInterceptor(cfg.timeout)),
		// A string that is not UTF-8, in any request, is refused before sending (utf8.go).
		grpc.WithChainUnaryInterceptor(utf8UnaryInterceptor),
		grpc.WithChainStreamInterceptor(utf8StreamInterceptor),
	}
	if cfg.apiKey != "" {
		dialOptions = append(dialOptions, grpc.WithPerRPCCredentials(bearer{key: cfg.apiKey}))
	}
	// "host:port,host:port" or "dns:///": round_robin and retries (balancing.go).
	serverName := ""
	if cfg.tls != nil {
		serverName = cfg.tls.ServerName
	}
	target, balancing, err := balancedTarget(target, serverName)
	if err != nil {
		return nil, err
	}
	dialOptions = append(dialOptions, balancing...)
	dialOptions = append(dialOptions, cfg.dialOptions...)
	conn, err := grpc.NewClient(target, dialOptions...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:    conn,
		stub:    pb.NewEmbeddingServiceClient(conn),
		vectors: pb.NewVectorServiceClient(conn),
		health:  healthpb.NewHealthClient(conn),
		timeout: cfg.timeout,
	}, nil
}

// Close closes the connection; calls in progress fail with codes.Canceled.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection, to build other services' stubs on it.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Stub is the generated EmbeddingService client on this connection.
func (c *Client) Stub() pb.EmbeddingServiceClient { return c.stub }

// VectorStub is the generated VectorService client on this connection.
func (c *Client) VectorStub() pb.VectorServiceClient { return c.vectors }

// ModelInfo describes the served model (id, dimensions, max tokens, limits).
func (c *Client) ModelInfo(ctx context.Context) (*pb.GetModelInfoResponse, error) {
	return c.stub.GetModelInfo(ctx, &pb.GetModelInfoRequest{})
}

// Health reports the standard health status of service ("" for the server).
func (c *Client) Health(ctx context.Context, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	reply, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return reply.GetStatus(), nil
}

// WaitUntilServing polls health until the server reports SERVING (its model
// is loaded and warm) or ctx ends.
func (c *Client) WaitUntilServing(ctx context.Context) error {
	for {
		probe, cancel := context.WithTimeout(ctx, 5*time.Second)
		state, err := c.Health(probe, "")
		cancel()
		if err == nil && state == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("health is %s", state)
			}
			return fmt.Errorf("embedserve: server not serving: %w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Embed returns one vector per text, in input order. Large inputs are sent as
// several requests of BatchSize texts, MaxInFlight at a time, under one
// deadline (ctx's, else the client's default); the first error cancels the
// others and is returned as the server's status error.
func (c *Client) Embed(ctx context.Context, texts []string, opts ...EmbedOption) ([][]float32, error) {
	return embedInBatches(ctx, c, texts, pb.Precision_PRECISION_UNSPECIFIED, opts, func(embeddings []*pb.Embedding) ([][]float32, error) {
		return vectorsOf(embeddings), nil
	})
}

// EmbedQuantized is Embed with each vector in fewer bits: one byte slice per
// text, in input order, sent in batches as Embed sends them. precision is one of
//
//   - pb.Precision_PRECISION_INT8: one signed byte per dimension (read each as
//     int8(b)), the vector times 127 over its largest absolute value, rounded;
//   - pb.Precision_PRECISION_UINT8: INT8's values plus 128, one byte per dimension;
//   - pb.Precision_PRECISION_BINARY: one bit per dimension, 1 where the value is
//     above 0, eight to a byte with the first dimension in the highest bit (the
//     last byte padded with 0 bits), each byte minus 128 as a signed byte
//     (int8(b)); (dimensions+7)/8 bytes;
//   - pb.Precision_PRECISION_UBINARY: the same bits unsigned, for Hamming distance.
//
// FLOAT32 and UNSPECIFIED are refused with codes.InvalidArgument: Embed gives
// the floats. A server older than quantized output answers floats, which is
// reported as codes.Unimplemented.
func (c *Client) EmbedQuantized(ctx context.Context, texts []string, precision pb.Precision, opts ...EmbedOption) ([][]byte, error) {
	if err := quantizedPrecision(precision, "EmbedQuantized", "Embed"); err != nil {
		return nil, err
	}
	return embedInBatches(ctx, c, texts, precision, opts, quantizedOf)
}

// quantizedPrecision refuses FLOAT32 and UNSPECIFIED for method, a quantized
// call, with codes.InvalidArgument naming floats, the call that gives them.
func quantizedPrecision(precision pb.Precision, method, floats string) error {
	if precision == pb.Precision_PRECISION_UNSPECIFIED || precision == pb.Precision_PRECISION_FLOAT32 {
		return status.Errorf(codes.InvalidArgument, "embedserve: %s needs INT8, UINT8, BINARY or UBINARY precision, not %s (%s gives float32 vectors)", method, precision, floats)
	}
	return nil
}

// embedInBatches sends texts in Embed requests of precision and puts each
// answer's rows, made by rows, in input order: one request when they fit in a
// batch, else batches of BatchSize, MaxInFlight at a time, under one deadline
// (ctx's, else the client's default); the first error cancels the others.
func embedInBatches[T any](ctx context.Context, c *Client, texts []string, precision pb.Precision, opts []EmbedOption, rows func([]*pb.Embedding) ([]T, error)) ([]T, error) {
	if len(texts) == 0 {
		return nil, status.Error(codes.InvalidArgument, "embedserve: texts must not be empty")
	}
	if err := textsError("", texts); err != nil {
		return nil, err
	}
	cfg := newCallConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	request := func(batch []string) *pb.EmbedRequest {
		return &pb.EmbedRequest{Inputs: batch, Options: cfg.options, Precision: precision}
	}
	if len(texts) <= cfg.batchSize {
		resp, err := c.stub.Embed(ctx, request(texts))
		if err != nil {
			return nil, err
		}
		return rows(resp.GetEmbeddings())
	}

	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	out := make([]T, len(texts))
	slots := make(chan struct{}, cfg.maxInFlight)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		stopped  error // set when ctx ended before every batch was sent
	)
launch:
	for start := 0; start < len(texts); start += cfg.batchSize {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			stopped = ctx.Err()
			break launch
		}
		batch := texts[start:min(start+cfg.batchSize, len(texts))]
		wg.Go(func() {
			defer func() { <-slots }()
			resp, err := c.stub.Embed(ctx, request(batch))
			var answer []T
			if err == nil {
				answer, err = rows(resp.GetEmbeddings())
			}
			if err != nil {
				once.Do(func() { firstErr = err; cancel() })
				return
			}
			copy(out[start:], answer)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if stopped != nil {
		return nil, status.FromContextError(stopped).Err()
	}
	return out, nil
}

// Ranked is one document of a Rerank, best first.
type Ranked struct {
	// Index is the document's position in the request.
	Index int
	// Score is the reranker's score (its raw logit with WithRawScores).
	Score float32
	// Document is the document's text with WithReturnDocuments, else "".
	Document string
}

// Rerank scores documents against query with the server's reranker (a
// cross-encoder reading the query and each document together) and returns
// them best first, ties in request order; WithTopN keeps the best n. A server
// without a reranker answers codes.FailedPrecondition (ModelInfo's Reranker is
// nil there); no documents is codes.InvalidArgument.
func (c *Client) Rerank(ctx context.Context, query string, documents []string, opts ...RerankOption) ([]Ranked, error) {
	request := &pb.RerankRequest{Query: query, Documents: documents}
	for _, opt := range opts {
		opt(request)
	}
	resp, err := c.stub.Rerank(ctx, request)
	if err != nil {
		return nil, err
	}
	ranked := make([]Ranked, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		ranked[i] = Ranked{Index: int(r.GetIndex()), Score: r.GetScore(), Document: r.GetDocument()}
	}
	return ranked, nil
}

func vectorsOf(embeddings []*pb.Embedding) [][]float32 {
	vectors := make([][]float32, len(embeddings))
	for i, e := range embeddings {
		vectors[i] = e.GetValues()
	}
	return vectors
}

// quantizedOf is the quantized bytes of each embedding; floats in their place
// mean a server that does not know Precision (it ignored the field).
func quantizedOf(embeddings []*pb.Embedding) ([][]byte, error) {
	rows := make([][]byte, len(embeddings))
	for i, e := range embeddings {
		if len(e.GetQuantized()) == 0 && len(e.GetValues()) > 0 {
			return nil, status.Error(codes.Unimplemented, "embedserve: the server answered float32 vectors: it predates quantized output (Embed's precision)")
		}
		rows[i] = e.GetQuantized()
	}
	return rows, nil
}

// deadlineInterceptor gives unary calls without a deadline the default one.
func deadlineInterceptor(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok && timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// bearer sends the API key as per-RPC credentials.
type bearer struct{ key string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

// RequireTransportSecurity is false so that an API key also works on
// plaintext connections inside a trusted network (as the Python client does).
func (b bearer) RequireTransportSecurity() bool { return false }
