package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.client.EmbedserveClient.IngestAck;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.IngestStreamRequest;
import dev.embedserve.v1.IngestStreamResponse;
import dev.embedserve.v1.VectorServiceGrpc;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Ingest against an in-process fake VectorService (no model): failures and protocol checks. */
class IngestFakeServerTest {
  /** Acknowledges the first {@code okBatches} messages, then fails with {@code failure}. */
  private static final class FakeIngest extends VectorServiceGrpc.VectorServiceImplBase {
    final List<IngestStreamRequest> received = new CopyOnWriteArrayList<>();
    private final int okBatches;
    private final Status failure;
    private final UnaryOperator<IngestStreamResponse> mangle;

    FakeIngest(int okBatches, Status failure, UnaryOperator<IngestStreamResponse> mangle) {
      this.okBatches = okBatches;
      this.failure = failure;
      this.mangle = mangle;
    }

    @Override
    public StreamObserver<IngestStreamRequest> ingestStream(
        StreamObserver<IngestStreamResponse> responses) {
      return new StreamObserver<>() {
        private long total;
        private boolean done;

        @Override
        public void onNext(IngestStreamRequest request) {
          if (done) {
            return;
          }
          received.add(request);
          if (received.size() > okBatches) {
            done = true;
            responses.onError(failure.asRuntimeException());
            return;
          }
          total += request.getDocumentsCount();
          IngestStreamResponse.Builder ack =
              IngestStreamResponse.newBuilder()
                  .setBatchId(request.getBatchId())
                  .setTotalAcknowledged(total);
          request.getDocumentsList().forEach(doc -> ack.addIds(doc.getId()));
          responses.onNext(mangle.apply(ack.build()));
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          if (!done) {
            responses.onCompleted();
          }
        }
      };
    }
  }

  private static List<Document> docs(int n) {
    return IntStream.range(0, n).mapToObj(i -> Vectors.document("doc-" + i, "text " + i)).toList();
  }

  @Test
  void failureAfterAcknowledgementsCarriesTheServerStatus() throws Exception {
    FakeIngest fake = new FakeIngest(2, Status.UNAVAILABLE.withDescription("store down"), a -> a);
    List<IngestAck> acks = new ArrayList<>();
    StatusRuntimeException e =
        FakeServers.withFake(
            fake,
            client ->
                assertThrows(
                    StatusRuntimeException.class,
                    () ->
                        client.ingest(
                            "c",
                            docs(25),
                            WriteOptions.newBuilder().setStoreText(true).build(),
                            5,
                            2,
                            acks::add)));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertEquals("store down", e.getStatus().getDescription());
    assertEquals(2, acks.size());
    assertEquals(10, acks.get(1).totalAcknowledged());
    assertEquals(List.of("doc-5", "doc-6", "doc-7", "doc-8", "doc-9"), acks.get(1).ids());
    IngestStreamRequest first = fake.received.get(0);
    assertEquals("c", first.getCollection());
    assertEquals("0", first.getBatchId());
    assertEquals(5, first.getDocumentsCount());
    assertTrue(first.getOptions().getStoreText());
    assertEquals("", fake.received.get(1).getCollection()); // only the first message names it
  }

  /**
   * {@code total} documents as a live source hands them out: {@code ready} at once, then each
   * only when {@code more} gives it; with none, it waits (until the stream interrupts its thread).
   */
  private static Iterable<Document> waitingSource(
      int total, List<Document> ready, BlockingQueue<Document> more) {
    return () ->
        new Iterator<>() {
          private int given;

          @Override
          public boolean hasNext() {
            return given < total;
          }

          @Override
          public Document next() {
            try {
              return given < ready.size() ? ready.get(given) : more.take();
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              throw new IllegalStateException("interrupted", e);
            } finally {
              given++;
            }
          }
        };
  }

  /**
   * {@code client.ingest("c", source)} in messages of 2, 8 in flight, run in {@code context} on a
   * thread of its own; the test fails when it takes longer than 10 s.
   */
  private static long ingestWithin10s(
      Context context,
      EmbedserveClient client,
      Iterable<Document> source,
      Consumer<IngestAck> onAck)
      throws Exception {
    ExecutorService thread = Executors.newSingleThreadExecutor();
    Callable<Long> ingest =
        () -> client.ingest("c", source, WriteOptions.getDefaultInstance(), 2, 8, onAck);
    try {
      return thread.submit(() -> context.call(ingest)).get(10, TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      throw new AssertionError("ingest still running after 10 s", e);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof Exception cause) {
        throw cause;
      }
      throw (Error) e.getCause();
    } finally {
      thread.shutdownNow();
    }
  }

  @Test
  void contextDeadlineEndsTheCallWhileTheIteratorWaits() throws Exception {
    List<IngestAck> acks = new CopyOnWriteArrayList<>();
    ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
    Context context = Context.current().withDeadlineAfter(500, TimeUnit.MILLISECONDS, timer);
    try {
      StatusRuntimeException e = endedWhileTheSourceWaits(context, acks::add);
      assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
      assertEquals(1, acks.size());
    } finally {
      timer.shutdownNow();
    }
  }

  @Test
  void contextCancellationEndsTheCallWhileTheIteratorWaits() throws Exception {
    List<IngestAck> acks = new CopyOnWriteArrayList<>();
    Context.CancellableContext context = Context.current().withCancellation();
    Consumer<IngestAck> cancelAtTheFirst =
        ack -> {
          acks.add(ack);
          context.cancel(null);
        };
    StatusRuntimeException e = endedWhileTheSourceWaits(context, cancelAtTheFirst);
    assertEquals(Status.Code.CANCELLED, e.getStatus().getCode());
    assertEquals(1, acks.size());
  }

  /**
   * How an ingestion run in {@code context} ends when its source gives 3 documents and then waits
   * for good: its first message of 2 acknowledged, the third document never sent.
   */
  private static StatusRuntimeException endedWhileTheSourceWaits(
      Context context, Consumer<IngestAck> onAck) throws Exception {
    Iterable<Document> source =
        waitingSource(Integer.MAX_VALUE, docs(3), new LinkedBlockingQueue<>());
    return FakeServers.withFake(
        new FakeIngest(100, Status.OK, a -> a),
        client ->
            assertThrows(
                StatusRuntimeException.class,
                () -> ingestWithin10s(context, client, source, onAck)));
  }

  /**
   * The source gives its third document only once the first acknowledgement is in: that comes
   * while the source waits, not once the window of messages is full.
   */
  @Test
  void acknowledgementsComeWhileTheIteratorWaits() throws Exception {
    BlockingQueue<Document> more = new LinkedBlockingQueue<>();
    List<Document> docs = docs(6);
    List<IngestAck> acks = new CopyOnWriteArrayList<>();
    Consumer<IngestAck> releaseTheRest =
        ack -> {
          acks.add(ack);
          if (acks.size() == 1) {
            more.addAll(docs.subList(2, 6));
          }
        };
    long acknowledged =
        FakeServers.withFake(
            new FakeIngest(100, Status.OK, a -> a),
            client ->
                assertDoesNotThrow(
                    () ->
                        ingestWithin10s(
                            Context.current(),
                            client,
                            waitingSource(6, docs.subList(0, 2), more),
                            releaseTheRest)));
    assertEquals(6, acknowledged);
    assertEquals(3, acks.size());
  }

  @Test
  void iteratorExceptionComesAfterTheAcknowledgementsOfWhatWasSent() throws Exception {
    IllegalStateException broken = new IllegalStateException("bad source at 5");
    Iterable<Document> source =
        () ->
            new Iterator<>() {
              private int next;

              @Override
              public boolean hasNext() {
                return true;
              }

              @Override
              public Document next() {
                if (next == 5) {
                  throw broken;
                }
                return Vectors.document("doc-" + next, "text " + next++);
              }
            };
    List<IngestAck> acks = new ArrayList<>();
    IllegalStateException thrown =
        FakeServers.withFake(
            new FakeIngest(100, Status.OK, a -> a),
            client ->
                assertThrows(
                    IllegalStateException.class,
                    () ->
                        client.ingest(
                            "c", source, WriteOptions.getDefaultInstance(), 2, 8, acks::add)));
    assertSame(broken, thrown);
    assertEquals(2, acks.size()); // documents 0 to 3; the fifth's message was never complete
    assertEquals(4, acks.get(1).totalAcknowledged());
  }

  @Test
  void acknowledgementsThatDoNotMatchFailTheCall() throws Exception {
    for (UnaryOperator<IngestStreamResponse> mangle :
        List.<UnaryOperator<IngestStreamResponse>>of(
            ack -> ack.toBuilder().setBatchId("7").build(),
            ack -> ack.toBuilder().clearIds().addAllIds(ack.getIdsList().subList(1, 2)).build())) {
      List<IngestAck> acks = new ArrayList<>();
      StatusRuntimeException e =
          FakeServers.withFake(
              new FakeIngest(100, Status.OK, mangle),
              client ->
                  assertThrows(
                      StatusRuntimeException.class,
                      () -> client.ingest("c", docs(10), WriteOptions.getDefaultInstance(), 2, 2, acks::add)));
      assertEquals(Status.Code.INTERNAL, e.getStatus().getCode());
      assertTrue(acks.isEmpty());
    }
  }
}
