package embedserve

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strconv"

	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// StreamResult is the answer to one batch sent by EmbedStream.
type StreamResult struct {
	// Index is the batch's position in the input sequence (0, 1, 2, ...).
	Index int
	// RequestID is the id sent with the batch and echoed by the server.
	RequestID string
	// Vectors holds one vector per text of the batch, in order.
	Vectors [][]float32
	// Response is the server's full message (usage, timings, token counts).
	Response *pb.EmbedStreamResponse
}

// EmbedStream sends batches over one bidirectional EmbedStream call, with at
// most MaxInFlight batches awaiting their answer, and yields one result per
// batch in input order. Each request carries its batch index as request_id;
// an answer whose id does not match ends the iteration with an error.
//
// Iteration stops at the first error, which is yielded once (a server failure
// is its gRPC status error). Breaking out of the loop cancels the call. The
// batches sequence is consumed on another goroutine; FromChannel(ch) adapts
// a channel. The stream has no default deadline: bound it with ctx.
func (c *Client) EmbedStream(ctx context.Context, batches iter.Seq[[]string], opts ...EmbedOption) iter.Seq2[StreamResult, error] {
	cfg := newCallConfig(opts)
	return func(yield func(StreamResult, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.stub.EmbedStream(ctx)
		if err != nil {
			yield(StreamResult{}, err)
			return
		}
		slots := make(chan struct{}, cfg.maxInFlight)
		sent := make(chan string, cfg.maxInFlight)
		sendErr := make(chan error, 1)
		go func() {
			defer close(sent)
			index := 0
			for batch := range batches {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					sendErr <- nil
					return
				}
				id := strconv.Itoa(index)
				err := stream.Send(&pb.EmbedStreamRequest{RequestId: id, Inputs: batch, Options: cfg.options})
				if err != nil {
					if err == io.EOF {
						err = nil // the server ended the call; Recv reports why
					}
					sendErr <- err
					return
				}
				sent <- id
				index++
			}
			sendErr <- stream.CloseSend()
		}()

		index := 0
		for id := range sent {
			resp, err := stream.Recv()
			if err == io.EOF {
				err = fmt.Errorf("embedserve: stream ended before the answer to request %s", id)
			}
			if err != nil {
				yield(StreamResult{}, err)
				return
			}
			if resp.GetRequestId() != id {
				yield(StreamResult{}, fmt.Errorf("embedserve: stream out of order: got request_id %q, expected %q", resp.GetRequestId(), id))
				return
			}
			<-slots
			result := StreamResult{Index: index, RequestID: id, Vectors: vectorsOf(resp.GetEmbeddings()), Response: resp}
			index++
			if !yield(result, nil) {
				return
			}
		}
		if err := <-sendErr; err != nil {
			yield(StreamResult{}, err)
			return
		}
		// Everything sent was answered: the server's final status decides.
		if _, err := stream.Recv(); err != io.EOF {
			if err == nil {
				err = fmt.Errorf("embedserve: stream sent an answer to no request")
			}
			yield(StreamResult{}, err)
		}
	}
}

// Batches cuts texts into consecutive batches of at most size texts, for EmbedStream.
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
