package embedserve

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strconv"

	"google.golang.org/grpc"
)

// orderedStream is what one bidirectional call of EmbedStream or Ingest does:
// messages numbered 0, 1, 2, ... (their id, echoed by the server) with at
// most maxInFlight awaiting their answer, and each answer checked against its
// message and yielded in order.
type orderedStream[B, Req, Resp, Out any] struct {
	// batches are the messages' contents, or an error that ends the sending
	// (yielded after the answers to what was sent).
	batches     iter.Seq2[B, error]
	maxInFlight int
	request     func(index int, id string, batch B) *Req
	answerID    func(*Resp) string
	// result checks an answer against its message's batch and makes the output.
	result func(index int, id string, batch B, resp *Resp) (Out, error)
	// The words of the errors: "stream" or "ingest stream"; "request_id" or
	// "batch_id"; "the answer to request" or "the acknowledgement of batch";
	// "an answer to no request" or "an acknowledgement of no batch".
	name, idField, answerOf, strayAnswer string
}

type sentMessage[B any] struct {
	id    string
	batch B
}

// run opens the call and yields the outputs; the first error is yielded once
// and ends the iteration (the server's gRPC status error when it failed).
// Breaking out of the loop cancels the call. The batches are consumed on
// another goroutine.
func (s orderedStream[B, Req, Resp, Out]) run(ctx context.Context, open func(context.Context) (grpc.BidiStreamingClient[Req, Resp], error)) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var zero Out
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := open(ctx)
		if err != nil {
			yield(zero, err)
			return
		}
		slots := make(chan struct{}, s.maxInFlight)
		sent := make(chan sentMessage[B], s.maxInFlight)
		sendErr := make(chan error, 1)
		go s.send(ctx, stream, slots, sent, sendErr)

		index := 0
		for m := range sent {
			resp, err := stream.Recv()
			if err == io.EOF {
				err = fmt.Errorf("embedserve: %s ended before %s %s", s.name, s.answerOf, m.id)
			}
			if err != nil {
				yield(zero, err)
				return
			}
			if got := s.answerID(resp); got != m.id {
				yield(zero, fmt.Errorf("embedserve: %s out of order: got %s %q, expected %q", s.name, s.idField, got, m.id))
				return
			}
			out, err := s.result(index, m.id, m.batch, resp)
			if err != nil {
				yield(zero, err)
				return
			}
			<-slots
			index++
			if !yield(out, nil) {
				return
			}
		}
		if err := <-sendErr; err != nil {
			yield(zero, err)
			return
		}
		// Everything sent was answered: the server's final status decides.
		if _, err := stream.Recv(); err != io.EOF {
			if err == nil {
				err = fmt.Errorf("embedserve: %s sent %s", s.name, s.strayAnswer)
			}
			yield(zero, err)
		}
	}
}

// send takes a free slot per message (so a slow server slows the producer
// down), sends it and passes it on to the receiver; it ends with exactly one
// value on sendErr (nil when the receiver stopped or the server ended the call).
func (s orderedStream[B, Req, Resp, Out]) send(ctx context.Context, stream grpc.BidiStreamingClient[Req, Resp], slots chan struct{}, sent chan<- sentMessage[B], sendErr chan<- error) {
	defer close(sent)
	index := 0
	for batch, err := range s.batches {
		if err != nil {
			sendErr <- err
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			sendErr <- nil
			return
		}
		id := strconv.Itoa(index)
		if err := stream.Send(s.request(index, id, batch)); err != nil {
			if err == io.EOF {
				err = nil // the server ended the call; Recv reports why
			}
			sendErr <- err
			return
		}
		sent <- sentMessage[B]{id: id, batch: batch}
		index++
	}
	sendErr <- stream.CloseSend()
}
