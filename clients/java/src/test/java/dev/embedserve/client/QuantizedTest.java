package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import dev.embedserve.v1.EmbedOptions;
import dev.embedserve.v1.EmbedRequest;
import dev.embedserve.v1.EmbedResponse;
import dev.embedserve.v1.EmbedStreamRequest;
import dev.embedserve.v1.EmbedStreamResponse;
import dev.embedserve.v1.Embedding;
import dev.embedserve.v1.EmbeddingServiceGrpc;
import dev.embedserve.v1.Precision;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * embedQuantized against the float vectors embed gives for the same texts (one request each, so
 * the server sees the same batch and computes the same floats).
 */
@ExtendWith(LiveServer.class)
class QuantizedTest {
  private static final int DIMS = 384; // all-MiniLM-L6-v2
  private static final List<String> TEXTS =
      List.of(
          "The cat sat on the mat.",
          "Vectors for everyone.",
          "ünïcødé ✓",
          "A short text about rivers.",
          "Quantized embeddings save memory.");
  private static EmbedserveClient client;

  @BeforeAll
  static void connect() {
    client = EmbedserveClient.builder(LiveServer.target()).build();
  }

  @AfterAll
  static void disconnect() {
    client.close();
  }

  private static double maxAbs(float[] v) {
    double largest = 0;
    for (float x : v) {
      largest = Math.max(largest, Math.abs(x));
    }
    return largest;
  }

  @Test
  void int8IsEachVectorScaledTo127() {
    List<float[]> floats = client.embed(TEXTS);
    byte[][] int8 = client.embedQuantized(TEXTS, Precision.PRECISION_INT8);
    assertEquals(TEXTS.size(), int8.length);
    assertInt8Of(floats, int8);
  }

  /** Each int8 row is its float vector times 127 over its largest absolute value, rounded. */
  private static void assertInt8Of(List<float[]> floats, byte[][] int8) {
    for (int row = 0; row < floats.size(); row++) {
      float[] v = floats.get(row);
      assertEquals(DIMS, int8[row].length);
      double largest = maxAbs(v);
      boolean reaches127 = false;
      for (int i = 0; i < DIMS; i++) {
        double scaled = v[i] * 127.0 / largest;
        double expected = Math.rint(scaled);
        int got = int8[row][i]; // Java's signed byte is the int8 value
        if (got != expected) {
          // The server scales in float32 (v * (127 / max)): at a value within rounding of a
          // .5 tie it may round to the other neighbour.
          double fraction = Math.abs(scaled - Math.floor(scaled) - 0.5);
          assertTrue(
              Math.abs(got - expected) == 1 && fraction < 1e-4,
              "text " + row + " dimension " + i + ": " + got + " for " + scaled);
        }
        reaches127 |= Math.abs(got) == 127;
      }
      assertTrue(reaches127, "text " + row + ": no value of magnitude 127");
    }
  }

  @Test
  void uint8IsInt8Plus128() {
    byte[][] int8 = client.embedQuantized(TEXTS, Precision.PRECISION_INT8);
    byte[][] uint8 = client.embedQuantized(TEXTS, Precision.PRECISION_UINT8);
    assertEquals(TEXTS.size(), uint8.length);
    for (int row = 0; row < TEXTS.size(); row++) {
      assertEquals(DIMS, uint8[row].length);
      for (int i = 0; i < DIMS; i++) {
        assertEquals(int8[row][i] + 128, Byte.toUnsignedInt(uint8[row][i]), "text " + row);
      }
    }
  }

  @Test
  void binaryPacksTheSignBits() {
    List<float[]> floats = client.embed(TEXTS);
    byte[][] ubinary = client.embedQuantized(TEXTS, Precision.PRECISION_UBINARY);
    byte[][] binary = client.embedQuantized(TEXTS, Precision.PRECISION_BINARY);
    assertEquals(TEXTS.size(), ubinary.length);
    assertEquals(TEXTS.size(), binary.length);
    assertBinaryOf(floats, ubinary, binary);
  }

  /** The ubinary rows are the floats' sign bits, and the binary rows the same bytes minus 128. */
  private static void assertBinaryOf(List<float[]> floats, byte[][] ubinary, byte[][] binary) {
    for (int row = 0; row < floats.size(); row++) {
      float[] v = floats.get(row);
      assertEquals(DIMS / 8, ubinary[row].length);
      for (int i = 0; i < DIMS; i++) {
        // numpy.packbits order: the first dimension is the highest bit of the first byte.
        boolean bit = (Byte.toUnsignedInt(ubinary[row][i / 8]) >> (7 - i % 8) & 1) == 1;
        assertEquals(v[i] > 0, bit, "text " + row + " dimension " + i);
      }
      for (int b = 0; b < ubinary[row].length; b++) {
        // binary is each unsigned byte minus 128: the same bits with the top one flipped.
        assertEquals((byte) (ubinary[row][b] ^ 0x80), binary[row][b], "text " + row);
      }
    }
  }

  @Test
  void packedRowsRoundUpToWholeBytes() {
    EmbedOptions hundred = EmbedOptions.newBuilder().setDimensions(100).build();
    List<float[]> floats = client.embed(TEXTS, hundred);
    byte[][] ubinary = client.embedQuantized(TEXTS, Precision.PRECISION_UBINARY, hundred);
    byte[][] binary = client.embedQuantized(TEXTS, Precision.PRECISION_BINARY, hundred);
    byte[][] int8 = client.embedQuantized(TEXTS, Precision.PRECISION_INT8, hundred);
    for (int row = 0; row < TEXTS.size(); row++) {
      assertEquals(100, floats.get(row).length);
      assertEquals(13, ubinary[row].length, "(100 + 7) / 8 bytes");
      assertEquals(13, binary[row].length);
      assertEquals(100, int8[row].length);
      for (int i = 0; i < 100; i++) {
        boolean bit = (Byte.toUnsignedInt(ubinary[row][i / 8]) >> (7 - i % 8) & 1) == 1;
        assertEquals(floats.get(row)[i] > 0, bit, "text " + row + " dimension " + i);
      }
      // Dimensions 100..103 do not exist: the last byte's low 4 bits are padding, 0.
      assertEquals(0, ubinary[row][12] & 0x0F, "text " + row);
    }
  }

  @Test
  void float32IsRefused() {
    for (Precision precision :
        List.of(Precision.PRECISION_FLOAT32, Precision.PRECISION_UNSPECIFIED)) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class, () -> client.embedQuantized(TEXTS, precision));
      assertTrue(e.getMessage().contains(precision.name()), e.getMessage());
    }
  }

  /**
   * The texts in batches of 2 over embedQuantizedStream (one batch in flight), checking each
   * result's index and rows.
   */
  private static byte[][] streamQuantized(Precision precision) {
    List<List<String>> batches = batchesOf2();
    List<byte[]> rows = new ArrayList<>();
    long[] next = {0};
    long sent =
        client.embedQuantizedStream(
            batches,
            precision,
            EmbedOptions.getDefaultInstance(),
            1,
            result -> {
              int index = (int) next[0]++;
              assertEquals(index, result.index());
              assertEquals(Long.toString(index), result.requestId());
              assertTrue(result.vectors().isEmpty(), "float vectors in a quantized result");
              assertEquals(batches.get(index).size(), result.quantized().length);
              rows.addAll(List.of(result.quantized()));
            });
    assertEquals(batches.size(), sent);
    assertEquals(TEXTS.size(), rows.size());
    return rows.toArray(new byte[0][]);
  }

  private static List<List<String>> batchesOf2() {
    List<List<String>> batches = new ArrayList<>();
    for (int start = 0; start < TEXTS.size(); start += 2) {
      batches.add(TEXTS.subList(start, Math.min(start + 2, TEXTS.size())));
    }
    return batches;
  }

  /**
   * What {@code each} gives for the texts, one request per batch of {@link #batchesOf2}: the
   * server embeds each text in the same batch as the stream does, so the floats are the same.
   */
  private static <T> List<T> perBatch(Function<List<String>, List<T>> each) {
    List<T> all = new ArrayList<>();
    for (List<String> batch : batchesOf2()) {
      all.addAll(each.apply(batch));
    }
    return all;
  }

  @Test
  void streamGivesTheRowsOfEmbedQuantized() {
    List<float[]> floats = perBatch(client::embed);
    byte[][] int8 = streamQuantized(Precision.PRECISION_INT8);
    byte[][] binary = streamQuantized(Precision.PRECISION_BINARY);
    byte[][] ubinary = streamQuantized(Precision.PRECISION_UBINARY);
    assertInt8Of(floats, int8);
    assertBinaryOf(floats, ubinary, binary);
    Map<Precision, byte[][]> streamed =
        Map.of(Precision.PRECISION_INT8, int8, Precision.PRECISION_BINARY, binary);
    streamed.forEach(
        (precision, rows) -> {
          List<byte[]> unary = perBatch(batch -> List.of(client.embedQuantized(batch, precision)));
          for (int row = 0; row < TEXTS.size(); row++) {
            assertArrayEquals(unary.get(row), rows[row], precision + " text " + row);
          }
        });
  }

  @Test
  void streamRefusesFloat32() {
    for (Precision precision :
        List.of(Precision.PRECISION_FLOAT32, Precision.PRECISION_UNSPECIFIED)) {
      Iterable<List<String>> untouched =
          () -> {
            throw new AssertionError("batches taken for " + precision);
          };
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () -> client.embedQuantizedStream(untouched, precision, result -> {}));
      assertTrue(e.getMessage().contains(precision.name()), e.getMessage());
    }
  }

  @Test
  void emptyInputIsInvalidArgument() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.embedQuantized(List.of(), Precision.PRECISION_INT8));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  /**
   * An in-process fake Embed and EmbedStream (no model) that answers each input "text N" with
   * {@code row(N)} as its Embedding, 4 dimensions wide.
   */
  private static final class FakeEmbed extends EmbeddingServiceGrpc.EmbeddingServiceImplBase {
    final List<EmbedRequest> received = new CopyOnWriteArrayList<>();
    final List<EmbedStreamRequest> streamed = new CopyOnWriteArrayList<>();
    private final Function<Integer, Embedding> row;

    FakeEmbed(Function<Integer, Embedding> row) {
      this.row = row;
    }

    @Override
    public void embed(EmbedRequest request, StreamObserver<EmbedResponse> responses) {
      received.add(request);
      EmbedResponse.Builder response = EmbedResponse.newBuilder().setDimensions(4);
      for (String input : request.getInputsList()) {
        response.addEmbeddings(row.apply(Integer.parseInt(input.substring("text ".length()))));
      }
      responses.onNext(response.build());
      responses.onCompleted();
    }

    @Override
    public StreamObserver<EmbedStreamRequest> embedStream(
        StreamObserver<EmbedStreamResponse> responses) {
      return new StreamObserver<>() {
        @Override
        public void onNext(EmbedStreamRequest request) {
          streamed.add(request);
          EmbedStreamResponse.Builder response =
              EmbedStreamResponse.newBuilder()
                  .setRequestId(request.getRequestId())
                  .setDimensions(4);
          for (String input : request.getInputsList()) {
            response.addEmbeddings(row.apply(Integer.parseInt(input.substring("text ".length()))));
          }
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

  private static List<String> texts(int n) {
    return IntStream.range(0, n).mapToObj(i -> "text " + i).toList();
  }

  @Test
  void largeInputsAreBatchedInOrder() throws Exception {
    // Each row is its input's index as 4 big-endian bytes.
    FakeEmbed fake =
        new FakeEmbed(
            i ->
                Embedding.newBuilder()
                    .setQuantized(ByteString.copyFrom(ByteBuffer.allocate(4).putInt(i).array()))
                    .build());
    int n = 2 * EmbedserveClient.DEFAULT_BATCH_SIZE + 7;
    byte[][] rows = FakeServers.withFake(fake, c -> c.embedQuantized(texts(n), Precision.PRECISION_UINT8));
    assertEquals(n, rows.length);
    for (int i = 0; i < n; i++) {
      assertEquals(i, ByteBuffer.wrap(rows[i]).getInt(), "row " + i);
    }
    assertEquals(3, fake.received.size());
    for (EmbedRequest request : fake.received) {
      assertEquals(Precision.PRECISION_UINT8, request.getPrecision());
    }
  }

  @Test
  void floatAnswerIsUnimplemented() throws Exception {
    // A server from before quantized output ignores precision and answers floats.
    FakeEmbed fake =
        new FakeEmbed(i -> Embedding.newBuilder().addAllValues(List.of(1f, 2f, 3f, 4f)).build());
    StatusRuntimeException e =
        FakeServers.withFake(
            fake,
            c ->
                assertThrows(
                    StatusRuntimeException.class,
                    () -> c.embedQuantized(texts(3), Precision.PRECISION_INT8)));
    assertEquals(Status.Code.UNIMPLEMENTED, e.getStatus().getCode());
  }

  @Test
  void floatStreamAnswerIsUnimplemented() throws Exception {
    FakeEmbed fake =
        new FakeEmbed(i -> Embedding.newBuilder().addAllValues(List.of(1f, 2f, 3f, 4f)).build());
    List<List<String>> batches = List.of(texts(2), texts(2));
    StatusRuntimeException e =
        FakeServers.withFake(
            fake,
            c ->
                assertThrows(
                    StatusRuntimeException.class,
                    () ->
                        c.embedQuantizedStream(
                            batches, Precision.PRECISION_UINT8, result -> fail("a result"))));
    assertEquals(Status.Code.UNIMPLEMENTED, e.getStatus().getCode());
    assertEquals(Precision.PRECISION_UINT8, fake.streamed.get(0).getPrecision());
  }

  @Test
  void rowOfTheWrongWidthIsInternal() throws Exception {
    // 4 bytes are INT8's width for 4 dimensions, not BINARY's (1).
    FakeEmbed fake =
        new FakeEmbed(
            i -> Embedding.newBuilder().setQuantized(ByteString.copyFrom(new byte[4])).build());
    StatusRuntimeException e =
        FakeServers.withFake(
            fake,
            c ->
                assertThrows(
                    StatusRuntimeException.class,
                    () -> c.embedQuantized(texts(3), Precision.PRECISION_BINARY)));
    assertEquals(Status.Code.INTERNAL, e.getStatus().getCode());
    String description = e.getStatus().getDescription();
    assertTrue(description.contains("1 expected"), description);
  }
}
