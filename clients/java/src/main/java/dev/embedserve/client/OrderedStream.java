package dev.embedserve.client;

import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.lang.reflect.UndeclaredThrowableException;
import java.util.Iterator;
import java.util.Queue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;

/**
 * What one bidirectional call of {@code embedStream} or {@code ingest} does: messages numbered
 * 0, 1, 2, ... (their id, echoed by the server), at most {@code maxInFlight} awaiting their
 * answer (the next batch is taken only when a slot is free), and each answer checked against its
 * message and handed on in order, on the calling thread.
 *
 * <p>The batches are taken from the caller's iterator on a thread of their own, so that the
 * answers, the server's failure and the caller's {@link Context} (its deadline or cancellation,
 * which the call inherits) are seen while the iterator waits for its next item. A failure, an
 * exception of the caller's handler, or an interrupt of the calling thread cancels the call and
 * interrupts that thread; an exception of the iterator is thrown once the messages sent before it
 * are answered.
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

  /** The call's end, as the gRPC thread reports it (the status of {@code onError}). */
  private record Failed(Throwable error) {}

  /** The sending thread is done: {@code sent} messages, then {@code error} or the half-close. */
  private record SendingEnded(long sent, Throwable error) {}

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
   * Runs the call to its end, with at most {@code maxInFlight} (1 or more) messages unanswered.
   *
   * @return the number of messages sent (all answered)
   */
  long run(Iterator<? extends B> batches, int maxInFlight, Answer<B, A> onAnswer) {
    BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    // The call lives in a child of the caller's context: it inherits its deadline and
    // cancellation, and cancelling it is how this class ends the call from any thread.
    Context.CancellableContext callContext = Context.current().withCancellation();
    StreamObserver<Q> sender;
    Context previous = callContext.attach();
    try {
      sender =
          open.start(
              new StreamObserver<A>() {
                @Override
                public void onNext(A answer) {
                  events.add(answer);
                }

                @Override
                public void onError(Throwable t) {
                  events.add(new Failed(t));
                }

                @Override
                public void onCompleted() {
                  events.add(COMPLETED);
                }
              });
    } catch (RuntimeException | Error e) {
      callContext.cancel(e);
      throw e;
    } finally {
      callContext.detach(previous);
    }
    // Batches sent and not yet answered, in order: added before the message is sent, so that
    // its answer always finds it.
    Queue<B> awaiting = new ConcurrentLinkedQueue<>();
    Semaphore slots = new Semaphore(maxInFlight); // at least 1: the client's methods check it
    AtomicBoolean stopped = new AtomicBoolean();
    Thread producer =
        new Thread(
            callContext.wrap(
                () -> {
                  long sent = 0;
                  try {
                    while (true) {
                      slots.acquire();
                      if (stopped.get() || !batches.hasNext()) {
                        break;
                      }
                      B batch = batches.next();
                      if (stopped.get()) {
                        return;
                      }
                      awaiting.add(batch);
                      sender.onNext(request.build(sent, Long.toString(sent), batch));
                      sent++;
                    }
                    if (!stopped.get()) {
                      // Before the half-close: the server's end of the call comes after it.
                      events.add(new SendingEnded(sent, null));
                      sender.onCompleted();
                    }
                  } catch (InterruptedException e) {
                    // stopped by the calling thread, which no longer reads events
                  } catch (Throwable t) {
                    events.add(new SendingEnded(sent, t));
                  }
                }),
            "embedserve-" + words.stream().replace(' ', '-') + "-producer");
    producer.setDaemon(true); // an iterator that never returns must not keep the JVM alive
    producer.start();
    long received = 0;
    SendingEnded ended = null;
    boolean done = false;
    try {
      while (ended == null || received < ended.sent()) {
        Object event = events.take();
        if (event instanceof SendingEnded e) {
          ended = e;
          continue;
        }
        String expected = Long.toString(received);
        if (event instanceof Failed || event == COMPLETED) {
          throw failure(
              event, words.stream() + " ended before " + words.answerOf() + " " + expected, ended);
        }
        @SuppressWarnings("unchecked")
        A answer = (A) event;
        B batch = awaiting.poll();
        if (batch == null) {
          throw Status.INTERNAL
              .withDescription(words.stream() + " sent " + words.strayAnswer())
              .asRuntimeException();
        }
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
        onAnswer.accept(received, expected, batch, answer);
        received++;
        slots.release();
      }
      if (ended.error() != null) {
        // The iterator (or building a message) failed: what was sent before it is answered.
        throw unchecked(ended.error());
      }
      Object end = events.take();
      if (end != COMPLETED) {
        throw failure(end, words.stream() + " sent " + words.strayAnswer(), null);
      }
      done = true;
      return ended.sent();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").withCause(e).asRuntimeException();
    } finally {
      if (!done) {
        stopped.set(true);
        producer.interrupt();
      }
      // Ends the call if it is still running (a no-op after its end), and frees the context.
      callContext.cancel(null);
    }
  }

  /**
   * The failure of the call as the exception to throw; an exception of the iterator that came
   * first rides along, suppressed.
   */
  private static StatusRuntimeException failure(
      Object event, String otherwise, SendingEnded ended) {
    StatusRuntimeException failure;
    if (event instanceof Failed failed) {
      Throwable t = failed.error();
      failure =
          new StatusRuntimeException(Status.fromThrowable(t), Status.trailersFromThrowable(t));
    } else {
      failure = Status.INTERNAL.withDescription(otherwise).asRuntimeException();
    }
    if (ended != null && ended.error() != null) {
      failure.addSuppressed(ended.error());
    }
    return failure;
  }

  /** {@code t} as thrown by the iterator: unchecked as it is, anything else wrapped. */
  private static RuntimeException unchecked(Throwable t) {
    if (t instanceof RuntimeException e) {
      return e;
    }
    if (t instanceof Error e) {
      throw e;
    }
    return new UndeclaredThrowableException(t);
  }
}
