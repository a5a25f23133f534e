package embedserve

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
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
// and ends the iteration (the server's gRPC status error when it failed, ctx's
// as a status error when it ends first). Breaking out of the loop cancels the
// call. The batches are consumed on another goroutine, so ctx, the answers and
// the server's failure are watched even while the producer waits.
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
		answers := make(chan answer[Resp])
		go receive(ctx, stream, answers)
		// canceled is ctx's end as the status a call ended by it has.
		canceled := func() error { return status.FromContextError(ctx.Err()).Err() }

		index := 0
		// early is an answer (or the call's end) that came before the sender
		// handed over its message, or while it waited for the producer.
		var early *answer[Resp]
		// nextAnswer is early, else the next answer; false when ctx ends first.
		nextAnswer := func() (answer[Resp], bool) {
			if early != nil {
				a := *early
				early = nil
				return a, true
			}
			select {
			case a := <-answers:
				return a, true
			case <-ctx.Done():
				return answer[Resp]{}, false
			}
		}
		for {
			var m sentMessage[B]
			ok := true
			select {
			case m, ok = <-sent:
			case <-ctx.Done():
				yield(zero, canceled())
				return
			case a := <-answers:
				if a.err != nil && a.err != io.EOF {
					yield(zero, a.err) // the server failed while nothing awaited an answer
					return
				}
				// An answer whose message the sender has sent and is handing
				// over (sent never blocks it), or the server's end of the call
				// after the sender's CloseSend.
				early = &a
				select {
				case m, ok = <-sent:
				case <-ctx.Done():
					yield(zero, canceled())
					return
				}
			}
			if !ok {
				break
			}
			a, live := nextAnswer()
			if !live {
				yield(zero, canceled())
				return
			}
			if a.err == io.EOF {
				a.err = fmt.Errorf("embedserve: %s ended before %s %s", s.name, s.answerOf, m.id)
			}
			if a.err != nil {
				yield(zero, a.err)
				return
			}
			if got := s.answerID(a.resp); got != m.id {
				yield(zero, fmt.Errorf("embedserve: %s out of order: got %s %q, expected %q", s.name, s.idField, got, m.id))
				return
			}
			out, err := s.result(index, m.id, m.batch, a.resp)
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
		end, live := nextAnswer()
		if !live {
			yield(zero, canceled())
			return
		}
		if end.err != io.EOF {
			if end.err == nil {
				end.err = fmt.Errorf("embedserve: %s sent %s", s.name, s.strayAnswer)
			}
			yield(zero, end.err)
		}
	}
}

// answer is what one Recv returned.
type answer[Resp any] struct {
	resp *Resp
	err  error
}

// receive hands on every answer, and then the error that ended the call
// (io.EOF for its success), until ctx ends: a Recv is always waiting, so the
// server's failure is seen even while nothing is in flight.
func receive[Req, Resp any](ctx context.Context, stream grpc.BidiStreamingClient[Req, Resp], answers chan<- answer[Resp]) {
	for {
		resp, err := stream.Recv()
		select {
		case answers <- answer[Resp]{resp, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// send takes a free slot per message (so a slow server slows the producer
// down), sends it and passes it on to the receiver; it ends with exactly one
// value on sendErr (nil when the receiver stopped or the server ended the call).
// It never blocks on the receiver (sendErr holds one value, sent a message per
// slot), so once the receiver has stopped it ends as soon as the producer
// hands it something or returns: a producer blocked in its own code (a
// FromChannel channel that nobody sends to or closes) keeps this goroutine
// until then, and its yield returns false.
func (s orderedStream[B, Req, Resp, Out]) send(ctx context.Context, stream grpc.BidiStreamingClient[Req, Resp], slots chan struct{}, sent chan<- sentMessage[B], sendErr chan<- error) {
	defer close(sent)
	index := 0
	for batch, err := range s.batches {
		if ctx.Err() != nil { // the receiver stopped while the producer waited
			sendErr <- nil
			return
		}
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
