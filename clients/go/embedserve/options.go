package embedserve

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// EmbedOption configures one Embed, EmbedStream, Ingest or Upsert call. Every
// option defaults to the served model's own setting (for Ingest and Upsert,
// the task defaults to the model's DOCUMENT prompt).
type EmbedOption func(*callConfig)

type callConfig struct {
	options     *pb.EmbedOptions
	batchSize   int
	maxInFlight int
	storeText   bool
	split       *pb.PassageSplit
	// err is the first option's refusal (a negative WithBatchSize or
	// WithMaxInFlight), returned by the calls that use those.
	err error
}

const (
	// DefaultBatchSize is the number of texts Embed sends per request.
	DefaultBatchSize = 256
	// DefaultMaxInFlight bounds the requests Embed and EmbedStream have outstanding.
	DefaultMaxInFlight = 4
	// DefaultIngestBatchSize is the number of documents Ingest sends per message.
	DefaultIngestBatchSize = 64
	// DefaultIngestMaxInFlight bounds the messages Ingest has awaiting their acknowledgement.
	DefaultIngestMaxInFlight = 8
)

func newCallConfig(opts []EmbedOption) callConfig {
	return newCallConfigWith(DefaultBatchSize, DefaultMaxInFlight, opts)
}

func newCallConfigWith(batchSize, maxInFlight int, opts []EmbedOption) callConfig {
	cfg := callConfig{options: &pb.EmbedOptions{}, batchSize: batchSize, maxInFlight: maxInFlight}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// writeOptions are the WriteOptions of an Ingest or Upsert call.
func (c callConfig) writeOptions() *pb.WriteOptions {
	return &pb.WriteOptions{Embed: c.options, StoreText: c.storeText, Split: c.split}
}

// WithTask selects the model's prompt (pb.Task_TASK_QUERY, pb.Task_TASK_DOCUMENT, ...).
func WithTask(task pb.Task) EmbedOption {
	return func(c *callConfig) { c.options.Task = task }
}

// WithPrompt prepends a free prompt string to every input (overrides WithTask).
func WithPrompt(prompt string) EmbedOption {
	return func(c *callConfig) { c.options.Prompt = &prompt }
}

// WithDimensions keeps the first n dimensions (Matryoshka truncation).
func WithDimensions(n uint32) EmbedOption {
	return func(c *callConfig) { c.options.Dimensions = &n }
}

// WithNormalize turns L2 normalisation on or off.
func WithNormalize(normalize bool) EmbedOption {
	return func(c *callConfig) { c.options.Normalize = &normalize }
}

// WithPooling overrides the model's pooling.
func WithPooling(pooling pb.Pooling) EmbedOption {
	return func(c *callConfig) { c.options.Pooling = pooling }
}

// WithOverflow sets what happens to inputs longer than the model's maximum.
func WithOverflow(policy pb.OverflowPolicy) EmbedOption {
	return func(c *callConfig) { c.options.Overflow = policy }
}

// WithPriority sets the queue the texts wait in on the server:
// PRIORITY_BULK lets queries go first (a large offline job sent as Embed
// calls); PRIORITY_INTERACTIVE puts a write ahead of queued bulk work. By
// default writes and EmbedStream are bulk and the rest interactive.
func WithPriority(priority pb.Priority) EmbedOption {
	return func(c *callConfig) { c.options.Priority = priority }
}

// WithBatchSize sets how many texts Embed and EmbedQuantized send per
// request (default DefaultBatchSize; the server's limit is GetModelInfo's
// limits.max_inputs_per_request), or how many documents Ingest sends per
// message (default DefaultIngestBatchSize). 0 keeps the default; a negative n
// fails the call (Embed, EmbedQuantized, the streams, Ingest and Upsert) with
// codes.InvalidArgument before anything is sent.
func WithBatchSize(n int) EmbedOption {
	return func(c *callConfig) {
		if n < 0 {
			c.refuse(status.Errorf(codes.InvalidArgument, "embedserve: WithBatchSize needs at least 1 (0 for the default), got %d", n))
		} else if n > 0 {
			c.batchSize = n
		}
	}
}

// WithMaxInFlight bounds the requests Embed, EmbedQuantized, EmbedStream and
// EmbedQuantizedStream have outstanding at once (default DefaultMaxInFlight),
// or Ingest's messages awaiting their acknowledgement (default
// DefaultIngestMaxInFlight). 0 keeps the default; a negative n fails the call
// as a negative WithBatchSize does.
func WithMaxInFlight(n int) EmbedOption {
	return func(c *callConfig) {
		if n < 0 {
			c.refuse(status.Errorf(codes.InvalidArgument, "embedserve: WithMaxInFlight needs at least 1 (0 for the default), got %d", n))
		} else if n > 0 {
			c.maxInFlight = n
		}
	}
}

// refuse keeps the first option's error.
func (c *callConfig) refuse(err error) {
	if c.err == nil {
		c.err = err
	}
}

// WithStoreText keeps each document's text (with WithSplit, each passage's)
// in its payload under "text" (Ingest and Upsert; ignored by the embedding
// calls).
func WithStoreText(store bool) EmbedOption {
	return func(c *callConfig) { c.storeText = store }
}

// WithSplit stores each text document as passages of the model's maximum
// length, each repeating an eighth of the one before (Ingest and Upsert;
// ignored by the embedding calls). A document "<id>" becomes the points
// "<id>#0", "<id>#1", ..., each with the document's payload plus "doc_id" (the
// id), "passage" (its number), "passages" (how many) and "span" ([start, end)
// offsets in the text's Unicode code points: slice []rune(text), not the
// string's bytes); SearchGroups by "doc_id" answers once per
// document. Upsert then counts passages; Ingest still acknowledges document ids.
func WithSplit() EmbedOption {
	return func(c *callConfig) { c.split = &pb.PassageSplit{} }
}

// WithSplitTokens is WithSplit with passages of at most maxTokens tokens of
// text (from 1 to the model's maximum less the prompt and special tokens),
// each repeating overlapTokens of the one before (at most maxTokens/2).
func WithSplitTokens(maxTokens, overlapTokens uint32) EmbedOption {
	return func(c *callConfig) {
		c.split = &pb.PassageSplit{MaxTokens: &maxTokens, OverlapTokens: &overlapTokens}
	}
}

// RerankOption configures one Rerank call. Unset, every document comes back
// with the reranker's score, without its text, and a pair longer than the
// reranker's maximum is cut at the end of the longer of the two.
type RerankOption func(*pb.RerankRequest)

// WithTopN keeps the best n documents (default 0: every document).
func WithTopN(n uint32) RerankOption {
	return func(r *pb.RerankRequest) { r.TopN = n }
}

// WithRawScores returns the reranker's raw logits instead of its scores (the
// logits through its activation, ModelInfo's Reranker.Activation: a sigmoid,
// 0 to 1, for most rerankers).
func WithRawScores(raw bool) RerankOption {
	return func(r *pb.RerankRequest) { r.RawScores = raw }
}

// WithReturnDocuments copies each document's text into its result.
func WithReturnDocuments(include bool) RerankOption {
	return func(r *pb.RerankRequest) { r.ReturnDocuments = include }
}

// WithRerankOverflow sets what happens to a query and document longer than
// the reranker's maximum: OVERFLOW_POLICY_TRUNCATE_RIGHT (default) cuts the
// end of the longer of the two, TRUNCATE_LEFT its start, ERROR refuses the
// request, CHUNK reads the document in overlapping windows and scores it by
// its best one.
func WithRerankOverflow(policy pb.OverflowPolicy) RerankOption {
	return func(r *pb.RerankRequest) { r.Overflow = policy }
}

// GetOption configures one Get call.
type GetOption func(*pb.GetRequest)

// WithExactPayloads reads the payloads as JSON text (the request's
// exact_payloads; the server fills StoredDocument.payload_json instead of the
// Struct), so that their numbers come back exactly: an integer an int64 holds
// as int64, 9007199254740993 too (a Struct's doubles would change it to
// 9007199254740992), any other number as float64. Without it every number is
// a float64. Scroll and ScrollAll take the same as the ScrollRequest's
// ExactPayloads.
func WithExactPayloads() GetOption {
	return func(r *pb.GetRequest) { r.ExactPayloads = true }
}
