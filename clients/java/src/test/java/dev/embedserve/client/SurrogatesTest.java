package dev.embedserve.client;

import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.match;
import static dev.embedserve.client.Vectors.must;
import static dev.embedserve.client.Vectors.struct;
import static dev.embedserve.client.Vectors.textList;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.embedserve.client.EmbedserveClient.IngestAck;
import dev.embedserve.client.EmbedserveClient.StreamResult;
import dev.embedserve.v1.CountRequest;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.EmbedOptions;
import dev.embedserve.v1.EmbedRequest;
import dev.embedserve.v1.EmbedResponse;
import dev.embedserve.v1.EmbedStreamRequest;
import dev.embedserve.v1.EmbedStreamResponse;
import dev.embedserve.v1.Embedding;
import dev.embedserve.v1.EmbeddingServiceGrpc;
import dev.embedserve.v1.IngestStreamRequest;
import dev.embedserve.v1.IngestStreamResponse;
import dev.embedserve.v1.Precision;
import dev.embedserve.v1.VectorServiceGrpc;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Strings that are no text (half of a surrogate pair, which protobuf-java would send as '?': a
 * text embedded as another, two ids stored as one) are refused before sending with
 * INVALID_ARGUMENT, in the Python client's words, naming where they are. Against in-process fakes
 * (no model) that record what reaches them; a call that passes the checks and reaches a method the
 * fake lacks ends with UNIMPLEMENTED.
 */
class SurrogatesTest {
  private static final String HALF = ", half of a surrogate pair and not a character";

  private static void assertRefused(String description, Executable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
    assertEquals(description, e.getStatus().getDescription());
  }

  private static void assertSent(Executable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
    assertEquals(Status.Code.UNIMPLEMENTED, e.getStatus().getCode(), e.toString());
  }

  @Test
  void documentsAndPayloadsAreRefusedWhereTheyAreBuilt() {
    assertRefused(
        "document id 'id\\ud800' holds \\ud800 at character 3" + HALF,
        () -> document("id\uD800", "first"));
    assertRefused(
        "document id 'id\\udc00' holds \\udc00 at character 3" + HALF,
        () -> document("id\uDC00", new float[] {1}, null));
    assertRefused(
        "document 'z': text holds \\ud800 at character 2" + HALF, () -> document("z", "z\uD800"));
    // Characters are counted as Python counts them: a pair is one; a low half before a high one
    // is no pair.
    assertRefused(
        "document 'e': text holds \\udc00 at character 3" + HALF,
        () -> document("e", "\uD83D\uDE80a\uDC00\uD800"));
    assertRefused(
        "document 'p': payload 'surrogate' holds \\udc00 at character 4" + HALF,
        () -> document("p", "x", Map.of("surrogate", "bad\uDC00")));
    assertRefused(
        "document 'p': payload 'nested.tags[1]' holds \\ud800 at character 1" + HALF,
        () -> document("p", "x", Map.of("nested", Map.of("tags", List.of("ok", "\uD800")))));
    assertRefused(
        "document 'k': payload key 'bad\\udc00' holds \\udc00 at character 4" + HALF,
        () -> document("k", "x", Map.of("bad\uDC00", 1)));
    assertRefused(
        "payload 'a' key 'b\\ud800' holds \\ud800 at character 2" + HALF,
        () -> struct(Map.of("a", Map.of("b\uD800", 1))));
    assertRefused(
        "text 1 holds \\ud800 at character 1" + HALF, () -> textList(List.of("ok", "\uD800x")));
    // Pairs are text.
    document("\uD83D\uDE80", "héllo 世界 \uD83D\uDE80", Map.of("\uD83D\uDD11", "\uD83D\uDE80"));
  }

  /** Answers every input with one value, 1, and records the inputs that reach it. */
  private static final class RecordingEmbed extends EmbeddingServiceGrpc.EmbeddingServiceImplBase {
    final List<String> inputs = new CopyOnWriteArrayList<>();

    @Override
    public void embed(EmbedRequest request, StreamObserver<EmbedResponse> responses) {
      inputs.addAll(request.getInputsList());
      EmbedResponse.Builder response = EmbedResponse.newBuilder().setDimensions(1);
      request
          .getInputsList()
          .forEach(i -> response.addEmbeddings(Embedding.newBuilder().addValues(1)));
      responses.onNext(response.build());
      responses.onCompleted();
    }

    @Override
    public StreamObserver<EmbedStreamRequest> embedStream(
        StreamObserver<EmbedStreamResponse> responses) {
      return new StreamObserver<>() {
        @Override
        public void onNext(EmbedStreamRequest request) {
          inputs.addAll(request.getInputsList());
          EmbedStreamResponse.Builder response =
              EmbedStreamResponse.newBuilder()
                  .setRequestId(request.getRequestId())
                  .setDimensions(1);
          request
              .getInputsList()
              .forEach(i -> response.addEmbeddings(Embedding.newBuilder().addValues(1)));
          responses.onNext(response.build());
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          responses.onCompleted();
        }
      };
    }
  }

  @Test
  void textsAreRefusedByTheirPlace() throws Exception {
    RecordingEmbed fake = new RecordingEmbed();
    List<String> texts = List.of("a", "b", "c", "d", "abc\uD800def");
    List<StreamResult> results = new ArrayList<>();
    FakeServers.withFake(
        fake,
        client -> {
          assertRefused("text 4 holds \\ud800 at character 4" + HALF, () -> client.embed(texts));
          // Its place in texts, not in its request of 2.
          ExecutionException e =
              assertThrows(
                  ExecutionException.class,
                  () -> client.embedAsync(texts, EmbedOptions.getDefaultInstance(), 2, 1).get());
          assertRefused(
              "text 4 holds \\ud800 at character 4" + HALF,
              () -> {
                throw assertInstanceOf(StatusRuntimeException.class, e.getCause());
              });
          assertRefused(
              "text 0 holds \\udc00 at character 1" + HALF,
              () -> client.embedQuantized(List.of("\uDC00"), Precision.PRECISION_INT8));
          // A stream's batch, once the batches before it are answered.
          assertRefused(
              "batch 1: text 1 holds \\ud800 at character 2" + HALF,
              () ->
                  client.embedStream(
                      List.of(List.of("s0", "s1"), List.of("s2", "s\uD800")), results::add));
          // The other texts by their field: rerank's, and the stub's own calls.
          assertRefused(
              "query holds \\ud800 at character 2" + HALF,
              () -> client.rerank("q\uD800", List.of("a")));
          assertRefused(
              "documents[1] holds \\udc00 at character 2" + HALF,
              () -> client.rerank("q", List.of("a", "b\uDC00")));
          assertRefused(
              "inputs[0] holds \\ud800 at character 2" + HALF,
              () -> client.stub().embed(EmbedRequest.newBuilder().addInputs("x\uD800").build()));
          assertEquals(1, client.embed(List.of("\uD83D\uDE80 ok")).size());
          return null;
        });
    assertEquals(1, results.size());
    assertEquals(List.of("s0", "s1", "\uD83D\uDE80 ok"), fake.inputs); // nothing else arrived
  }

  /**
   * A refused call never starts: nothing is left for the channel's shutdown to wait for (a call
   * started and then failed by a throwing sendMessage kept close() waiting its 5 s).
   */
  @Test
  void aRefusedCallLeavesNothingOpen() throws Exception {
    FakeServers.withFake(
        new RecordingVectors(),
        client -> {
          assertRefused(
              "name holds \\ud800 at character 2" + HALF, () -> client.createCollection("c\uD800"));
          assertRefused(
              "inputs[0] holds \\ud800 at character 1" + HALF,
              () -> client.stub().embed(EmbedRequest.newBuilder().addInputs("\uD800").build()));
          long start = System.nanoTime();
          client.close(); // waits for the channel's calls to end, at most 5 s
          assertTrue(
              System.nanoTime() - start < TimeUnit.SECONDS.toNanos(3),
              "close() took " + (System.nanoTime() - start) / 1_000_000 + " ms");
          return null;
        });
  }

  /** Acknowledges every ingest message; the other methods answer UNIMPLEMENTED. */
  private static final class RecordingVectors extends VectorServiceGrpc.VectorServiceImplBase {
    final List<String> ids = new CopyOnWriteArrayList<>();

    @Override
    public StreamObserver<IngestStreamRequest> ingestStream(
        StreamObserver<IngestStreamResponse> responses) {
      return new StreamObserver<>() {
        private long total;

        @Override
        public void onNext(IngestStreamRequest request) {
          IngestStreamResponse.Builder ack =
              IngestStreamResponse.newBuilder().setBatchId(request.getBatchId());
          for (Document doc : request.getDocumentsList()) {
            ids.add(doc.getId());
            ack.addIds(doc.getId());
          }
          total += request.getDocumentsCount();
          responses.onNext(ack.setTotalAcknowledged(total).build());
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          responses.onCompleted();
        }
      };
    }
  }

  @Test
  void vectorServiceStringsAreRefusedByTheirField() throws Exception {
    RecordingVectors fake = new RecordingVectors();
    List<IngestAck> acks = new ArrayList<>();
    FakeServers.withFake(
        fake,
        client -> {
          assertRefused(
              "name holds \\ud800 at character 2" + HALF, () -> client.createCollection("c\uD800"));
          assertRefused(
              "text holds \\udc00 at character 2" + HALF, () -> client.search("c", "q\uDC00", 3));
          assertRefused(
              "filter.must[1].match.text holds \\ud800 at character 2" + HALF,
              () -> client.search("c", "q", must(match("k", "ok"), match("k", "v\uD800")), null));
          assertRefused(
              "positive[1].id holds \\ud800 at character 1" + HALF,
              () -> client.recommend("c", List.of("a", "\uD800b"), List.of(), 3));
          assertRefused(
              "ids[1] holds \\ud800 at character 2" + HALF,
              () -> client.get("c", List.of("a", "b\uD800"), false));
          assertRefused(
              "set key 'al\\ud800' holds \\ud800 at character 3" + HALF,
              () -> client.updateAliases(Map.of("al\uD800", "c"), List.of()));
          assertRefused(
              "payload 'n' holds \\udc00 at character 2" + HALF,
              () ->
                  client.updatePayload(
                      "c", List.of("a"), null, Map.of("n", "x\uDC00"), List.of()));
          assertRefused(
              "collection holds \\udc00 at character 2" + HALF,
              () ->
                  client
                      .vectorStub()
                      .count(CountRequest.newBuilder().setCollection("c\uDC00").build()));
          // Documents built without Vectors.document: two ids that protobuf would make one.
          Document a = Document.newBuilder().setId("id\uD800").setText("first").build();
          Document b = Document.newBuilder().setId("id\uDC00").setText("second").build();
          assertRefused(
              "documents[0].id holds \\ud800 at character 3" + HALF,
              () -> client.upsert("c", List.of(a, b)));
          Document note =
              Document.newBuilder()
                  .setId("p")
                  .setText("x")
                  .setPayload(
                      Struct.newBuilder()
                          .putFields(
                              "note", Value.newBuilder().setStringValue("bad\uDC00").build()))
                  .build();
          assertRefused(
              "documents[0].payload.fields['note'].string_value holds \\udc00 at character 4"
                  + HALF,
              () -> client.upsert("c", List.of(note)));
          // An ingest stream: the messages before it are acknowledged, then it is refused.
          Document z = Document.newBuilder().setId("z\uD800").setText("third").build();
          assertRefused(
              "documents[0].id holds \\ud800 at character 2" + HALF,
              () ->
                  client.ingest(
                      "c",
                      List.of(document("d0", "x"), document("d1", "y"), z),
                      WriteOptions.getDefaultInstance(),
                      1,
                      1,
                      acks::add));
          // Text is sent as it is.
          assertSent(() -> client.search("c", "\uD83D\uDE80 héllo", 3));
          assertSent(() -> client.upsert("c", List.of(document("\uD83D\uDE80", "x"))));
          return null;
        });
    assertEquals(2, acks.size());
    assertEquals(List.of("d0", "d1"), fake.ids); // nothing else arrived
  }
}
