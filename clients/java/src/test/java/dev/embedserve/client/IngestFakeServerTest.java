package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.client.EmbedserveClient.IngestAck;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.IngestStreamRequest;
import dev.embedserve.v1.IngestStreamResponse;
import dev.embedserve.v1.VectorServiceGrpc;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
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

  private static <T> T withFake(FakeIngest fake, java.util.function.Function<EmbedserveClient, T> body)
      throws Exception {
    Server server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(fake)
            .build()
            .start();
    try (EmbedserveClient client =
        EmbedserveClient.builder("127.0.0.1:" + server.getPort()).build()) {
      return body.apply(client);
    } finally {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  @Test
  void failureAfterAcknowledgementsCarriesTheServerStatus() throws Exception {
    FakeIngest fake = new FakeIngest(2, Status.UNAVAILABLE.withDescription("store down"), a -> a);
    List<IngestAck> acks = new ArrayList<>();
    StatusRuntimeException e =
        withFake(
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

  @Test
  void acknowledgementsThatDoNotMatchFailTheCall() throws Exception {
    for (UnaryOperator<IngestStreamResponse> mangle :
        List.<UnaryOperator<IngestStreamResponse>>of(
            ack -> ack.toBuilder().setBatchId("7").build(),
            ack -> ack.toBuilder().clearIds().addAllIds(ack.getIdsList().subList(1, 2)).build())) {
      List<IngestAck> acks = new ArrayList<>();
      StatusRuntimeException e =
          withFake(
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
