package dev.embedserve.client;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.Queue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Function;

/**
 * What one bidirectional call of {@code embedStream} or {@code ingest} does: messages numbered
 * 0, 1, 2, ... (their id, echoed by the server), at most {@code maxInFlight} awaiting their
 * answer (the next batch is taken only when a slot is free), and each answer checked against its
 * message and handed on in order, on the calling thread. A failure, or an exception of the
 * caller's handler or iterator, cancels the call.
 *
 * @param <B> what one message carries (a batch of texts or documents)
 * @param <Q> the request message
 * @param <A> the answer message
 */
final class OrderedStream<B, Q, A> {
  private static final Object COMPLETED = new Object();

  /** Opens the call: the async stub's method, e.g. {@code stub::embedStream}. */
  interface Open<Q, A> {
    StreamObserver<Q> start(StreamObserver<A> answers);
  }

  /** Builds message {@code index} (its id is the index in decimal). */
  interface Request<B, Q> {
    Q build(long index, String id, B batch);
  }

  /** Checks an answer against its message's batch (throwing when it does not match) and uses it. */
  interface Answer<B, A> {
    void accept(long index, String id, B batch, A answer);
  }

  /**
   * The words of the errors: "stream" or "ingest stream"; "request_id" or "batch_id"; "the
   * answer to request" or "the acknowledgement of batch"; "an answer to no request" or "an
   * acknowledgement of no batch".
   */
  record Words(String stream, String idField, String answerOf, String strayAnswer) {}

  private final Open<Q, A> open;
  private final Request<B, Q> request;
  private final Function<A, String> answerId;
  private final Words words;

  OrderedStream(Open<Q, A> open, Request<B, Q> request, Function<A, String> answerId, Words words) {
    this.open = open;
    this.request = request;
    this.answerId = answerId;
    this.words = words;
  }

  /**
   * Runs the call to its end.
   *
   * @return the number of messages sent (all answered)
   */
  long run(Iterator<? extends B> batches, int maxInFlight, Answer<B, A> onAnswer) {
    BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    @SuppressWarnings("unchecked")
    ClientCallStreamObserver<Q>[] call = new ClientCallStreamObserver[1];
    StreamObserver<Q> sender =
        open.start(
            new ClientResponseObserver<Q, A>() {
              @Override
              public void beforeStart(ClientCallStreamObserver<Q> started) {
                call[0] = started;
              }

              @Override
              public void onNext(A answer) {
                events.add(answer);
              }

              @Override
              public void onError(Throwable t) {
                events.add(t);
              }

              @Override
              public void onCompleted() {
                events.add(COMPLETED);
              }
            });
    Queue<B> awaiting = new ArrayDeque<>(); // batches sent, not yet answered
    long sent = 0;
    long received = 0;
    boolean closed = false;
    int window = Math.max(1, maxInFlight);
    try {
      while (true) {
        while (!closed && sent - received < window) {
          if (!batches.hasNext()) {
            sender.onCompleted();
            closed = true;
            break;
          }
          B batch = batches.next();
          sender.onNext(request.build(sent, Long.toString(sent), batch));
          awaiting.add(batch);
          sent++;
        }
        if (closed && received == sent) {
          break;
        }
        Object event = events.take();
        String expected = Long.toString(received);
        if (event instanceof Throwable || event == COMPLETED) {
          throw failure(event, words.stream() + " ended before " + words.answerOf() + " " + expected);
        }
        @SuppressWarnings("unchecked")
        A answer = (A) event;
        String got = answerId.apply(answer);
        if (!got.equals(expected)) {
          throw Status.INTERNAL
              .withDescription(
                  words.stream()
                      + " out of order: got "
                      + words.idField()
                      + " '"
                      + got
                      + "', expected '"
                      + expected
                      + "'")
              .asRuntimeException();
        }
        onAnswer.accept(received, expected, awaiting.remove(), answer);
        received++;
      }
      Object end = events.take();
      if (end != COMPLETED) {
        throw failure(end, words.stream() + " sent " + words.strayAnswer());
      }
      return sent;
    } catch (InterruptedException e) {
      call[0].cancel("interrupted", e);
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").withCause(e).asRuntimeException();
    } catch (RuntimeException | Error e) {
      call[0].cancel("client stopped the stream", e);
      throw e;
    }
  }

  private static StatusRuntimeException failure(Object event, String otherwise) {
    if (event instanceof Throwable t) {
      Status status = Status.fromThrowable(t);
      return new StatusRuntimeException(status, Status.trailersFromThrowable(t));
    }
    return Status.INTERNAL.withDescription(otherwise).asRuntimeException();
  }
}
