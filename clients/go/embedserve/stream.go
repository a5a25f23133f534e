package embedserve

import (
	"context"
	"fmt"
	"iter"

	"google.golang.org/grpc"

	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// StreamResult is the answer to one batch sent by EmbedStream or EmbedQuantizedStream.
type StreamResult struct {
	// Index is the batch's position in the input sequence (0, 1, 2, ...).
	Index int
	// RequestID is the id sent with the batch and echoed by the server.
	RequestID string
	// Vectors holds one vector per text of the batch, in order (nil from
	// EmbedQuantizedStream).
	Vectors [][]float32
	// Quantized holds one quantized vector per text of the batch, in order, from
	// EmbedQuantizedStream (nil from EmbedStream); the bytes are as EmbedQuantized
	// describes them.
	Quantized [][]byte
	// Response is the server's full message (usage, timings, token counts).
	Response *pb.EmbedStreamResponse
}

// EmbedStream sends batches over one bidirectional EmbedStream call, with at
// most MaxInFlight batches awaiting their answer, and yields one result per
// batch in input order. Each request carries its batch index as request_id;
// an answer whose id does not match ends the iteration with an error.
//
// Iteration stops at the first error, which is yielded once (a server failure
// is its gRPC status error; a text that is not UTF-8 is codes.InvalidArgument,
// "batch 2: text 1 is not UTF-8 (...)", once the batches before it are
// answered). Breaking out of the loop cancels the call. The
// batches sequence is consumed on another goroutine; FromChannel(ch) adapts
// a channel. The stream has no default deadline: bound it with ctx, which
// ends the iteration with its status (codes.DeadlineExceeded or
// codes.Canceled) even while batches waits for its next batch. A producer
// blocked in its own code then keeps that goroutine until it yields (its
// yield returns false) or returns: close a FromChannel channel to release it.
func (c *Client) EmbedStream(ctx context.Context, batches iter.Seq[[]string], opts ...EmbedOption) iter.Seq2[StreamResult, error] {
	return embedStream(ctx, c, batches, pb.Precision_PRECISION_UNSPECIFIED, opts, func(result *StreamResult, embeddings []*pb.Embedding) error {
		result.Vectors = vectorsOf(embeddings)
		return nil
	})
}

// EmbedQuantizedStream is EmbedStream with each vector in fewer bits: every
// request carries precision, and each result's Quantized holds one byte slice
// per text of its batch, in order (Vectors is nil). The precisions and their
// bytes are EmbedQuantized's.
//
// FLOAT32 and UNSPECIFIED are refused with codes.InvalidArgument (yielded once,
// before anything is sent): EmbedStream gives the floats. A server older than
// quantized output answers floats, which ends the iteration with
// codes.Unimplemented.
func (c *Client) EmbedQuantizedStream(ctx context.Context, batches iter.Seq[[]string], precision pb.Precision, opts ...EmbedOption) iter.Seq2[StreamResult, error] {
	if err := quantizedPrecision(precision, "EmbedQuantizedStream", "EmbedStream"); err != nil {
		return func(yield func(StreamResult, error) bool) { yield(StreamResult{}, err) }
	}
	return embedStream(ctx, c, batches, precision, opts, func(result *StreamResult, embeddings []*pb.Embedding) (err error) {
		result.Quantized, err = quantizedOf(embeddings)
		return err
	})
}

// embedStream is one EmbedStream call sending batches in requests of
// precision; rows fills each result's vectors from its answer's embeddings,
// and an error from it ends the iteration.
func embedStream(ctx context.Context, c *Client, batches iter.Seq[[]string], precision pb.Precision, opts []EmbedOption, rows func(*StreamResult, []*pb.Embedding) error) iter.Seq2[StreamResult, error] {
	cfg := newCallConfig(opts)
	if cfg.err != nil {
		return func(yield func(StreamResult, error) bool) { yield(StreamResult{}, cfg.err) }
	}
	stream := orderedStream[[]string, pb.EmbedStreamRequest, pb.EmbedStreamResponse, StreamResult]{
		batches:     checkedBatches(batches),
		maxInFlight: cfg.maxInFlight,
		request: func(_ int, id string, batch []string) *pb.EmbedStreamRequest {
			return &pb.EmbedStreamRequest{RequestId: id, Inputs: batch, Options: cfg.options, Precision: precision}
		},
		answerID: (*pb.EmbedStreamResponse).GetRequestId,
		result: func(index int, id string, _ []string, resp *pb.EmbedStreamResponse) (StreamResult, error) {
			result := StreamResult{Index: index, RequestID: id, Response: resp}
			if err := rows(&result, resp.GetEmbeddings()); err != nil {
				return StreamResult{}, err
			}
			return result, nil
		},
		name: "stream", idField: "request_id", answerOf: "the answer to request", strayAnswer: "an answer to no request",
	}
	return stream.run(ctx, func(ctx context.Context) (grpc.BidiStreamingClient[pb.EmbedStreamRequest, pb.EmbedStreamResponse], error) {
		return c.stub.EmbedStream(ctx)
	})
}

// checkedBatches adapts batches to what orderedStream takes: a batch holding a
// text that is not UTF-8 ends the sequence with its error, naming both ("batch
// 2: text 1 is not UTF-8 (...)"), yielded after the answers to what was sent.
func checkedBatches(batches iter.Seq[[]string]) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		index := 0
		for batch := range batches {
			if err := textsError(fmt.Sprintf("batch %d: ", index), batch); err != nil {
				yield(nil, err)
				return
			}
			if !yield(batch, nil) {
				return
			}
			index++
		}
	}
}

// Batches cuts texts into consecutive batches of at most size texts (size
// below 1: DefaultBatchSize), for EmbedStream and EmbedQuantizedStream.
func Batches(texts []string, size int) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		if size < 1 {
			size = DefaultBatchSize
		}
		for start := 0; start < len(texts); start += size {
			if !yield(texts[start:min(start+size, len(texts))]) {
				return
			}
		}
	}
}
