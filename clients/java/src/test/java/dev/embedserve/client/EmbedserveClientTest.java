package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.client.EmbedserveClient.StreamResult;
import dev.embedserve.v1.EmbedOptions;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(LiveServer.class)
class EmbedserveClientTest {
  private static final int DIMS = 384; // all-MiniLM-L6-v2
  private static EmbedserveClient client;

  @BeforeAll
  static void connect() {
    client = EmbedserveClient.builder(LiveServer.target()).build();
  }

  @AfterAll
  static void disconnect() {
    client.close();
  }

  private static double norm(float[] v) {
    double sum = 0;
    for (float x : v) {
      sum += (double) x * x;
    }
    return Math.sqrt(sum);
  }

  /**
   * How far one text's vector may move when it lands in another batch: rounding differs with
   * the batch's shape, by about 1e-7 in float32 and up to 5e-3 in bfloat16 (README, "Same text,
   * another batch"); different texts differ more.
   */
  private static double sameTextTolerance() {
    return "float32".equals(client.modelInfo().getDtype()) ? 1e-6 : 5e-3;
  }

  private static double maxAbsDiff(float[] a, float[] b) {
    assertEquals(a.length, b.length);
    double worst = 0;
    for (int i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs((double) a[i] - b[i]));
    }
    return worst;
  }

  @Test
  void modelInfo() {
    assertEquals(DIMS, client.modelInfo().getDimensions());
  }

  @Test
  void unaryEmbedGivesUnitVectors() {
    List<String> texts = List.of("The cat sat on the mat.", "Vectors for everyone.", "ünïcødé ✓");
    List<float[]> vectors = client.embed(texts);
    assertEquals(texts.size(), vectors.size());
    for (float[] v : vectors) {
      assertEquals(DIMS, v.length);
      assertEquals(1.0, norm(v), 1e-4);
    }
    assertTrue(maxAbsDiff(vectors.get(0), vectors.get(1)) > 1e-3, "different texts, same vector");
  }

  @Test
  void asyncEmbedSplitsLargeInputsInOrder() throws Exception {
    List<String> texts = List.of("alpha", "beta", "gamma", "delta", "epsilon");
    List<float[]> whole = client.embed(texts);
    CompletableFuture<List<float[]>> split =
        client.embedAsync(texts, EmbedOptions.getDefaultInstance(), 2, 2);
    List<float[]> parts = split.get(60, TimeUnit.SECONDS);
    assertEquals(texts.size(), parts.size());
    double tolerance = sameTextTolerance();
    for (int i = 0; i < texts.size(); i++) {
      assertTrue(maxAbsDiff(whole.get(i), parts.get(i)) <= tolerance, "text " + i);
    }
  }

  @Test
  void streamOfManyBatchesComesBackInOrder() {
    int total = 1024;
    int batchSize = 32;
    List<String> texts =
        IntStream.range(0, total).mapToObj(i -> "stream text " + i).collect(Collectors.toList());
    List<List<String>> batches = new ArrayList<>();
    for (int start = 0; start < total; start += batchSize) {
      batches.add(texts.subList(start, start + batchSize));
    }
    List<float[]> vectors = new ArrayList<>();
    long[] next = {0};
    long sent =
        client.embedStream(
            batches,
            EmbedOptions.getDefaultInstance(),
            8,
            result -> {
              assertEquals(next[0], result.index());
              assertEquals(Long.toString(next[0]), result.response().getRequestId());
              assertEquals(batchSize, result.vectors().size());
              vectors.addAll(result.vectors());
              next[0]++;
            });
    assertEquals(batches.size(), sent);
    assertEquals(total, vectors.size());
    double tolerance = sameTextTolerance();
    for (int i : new int[] {0, 517, total - 1}) {
      float[] unary = client.embed(List.of(texts.get(i))).get(0);
      assertEquals(DIMS, vectors.get(i).length);
      assertTrue(maxAbsDiff(vectors.get(i), unary) <= tolerance, "text " + i);
    }
  }

  @Test
  void handlerExceptionCancelsTheStream() {
    List<List<String>> batches =
        IntStream.range(0, 50).mapToObj(i -> List.of("text " + i)).collect(Collectors.toList());
    IllegalStateException stop = new IllegalStateException("enough");
    int[] seen = {0};
    IllegalStateException thrown =
        assertThrows(
            IllegalStateException.class,
            () ->
                client.embedStream(
                    batches,
                    result -> {
                      if (++seen[0] == 3) {
                        throw stop;
                      }
                    }));
    assertSame(stop, thrown);
    assertEquals(3, seen[0]);
  }

  /** One batch, then a source that waits: the context's deadline still ends the stream. */
  @Test
  void contextDeadlineEndsTheStreamWhileTheIteratorWaits() throws Exception {
    BlockingQueue<List<String>> later = new LinkedBlockingQueue<>();
    Iterable<List<String>> batches =
        () ->
            new Iterator<>() {
              private boolean first = true;

              @Override
              public boolean hasNext() {
                return true;
              }

              @Override
              public List<String> next() {
                if (first) {
                  first = false;
                  return List.of("the only batch");
                }
                try {
                  return later.take();
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                  throw new IllegalStateException("interrupted", e);
                }
              }
            };
    List<StreamResult> results = new CopyOnWriteArrayList<>();
    ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
    ExecutorService thread = Executors.newSingleThreadExecutor();
    try {
      Context context = Context.current().withDeadlineAfter(3, TimeUnit.SECONDS, timer);
      Future<Long> stream =
          thread.submit(() -> context.call(() -> client.embedStream(batches, results::add)));
      ExecutionException e =
          assertThrows(ExecutionException.class, () -> stream.get(15, TimeUnit.SECONDS));
      assertEquals(
          Status.Code.DEADLINE_EXCEEDED,
          assertInstanceOf(StatusRuntimeException.class, e.getCause()).getStatus().getCode());
      assertEquals(1, results.size());
    } finally {
      thread.shutdownNow();
      timer.shutdownNow();
    }
  }

  @Test
  void streamReportsServerError() {
    List<List<String>> batches = List.of(List.of("a"), List.of("b"), List.of("c"));
    EmbedOptions tooWide = EmbedOptions.newBuilder().setDimensions(100000).build();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.embedStream(batches, tooWide, 2, result -> {}));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  @Test
  void expiredDeadlineIsDeadlineExceeded() {
    List<String> texts =
        IntStream.range(0, 2000)
            .mapToObj(i -> ("word" + i + " ").repeat(40))
            .collect(Collectors.toList());
    EmbedserveClient hurried = client.withTimeout(Duration.ofMillis(1));
    // One large request, asynchronously: the future fails with the status.
    CompletionException failed =
        assertThrows(
            CompletionException.class,
            () -> hurried.embedAsync(texts, EmbedOptions.getDefaultInstance(), 2000, 1).join());
    StatusRuntimeException e = assertInstanceOf(StatusRuntimeException.class, failed.getCause());
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    // Blocking, split into several requests: the same code, thrown directly.
    e = assertThrows(StatusRuntimeException.class, () -> hurried.embed(texts));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    // The server keeps serving.
    assertEquals(1, client.embed(List.of("still alive")).size());
  }

  @Test
  void invalidOptionIsInvalidArgument() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.embed(List.of("x"), EmbedOptions.newBuilder().setDimensions(100000).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  /** Same vectors as embedserve.client.EmbedClient run by the repository's virtualenv. */
  @Test
  void sameVectorsAsPythonClient() throws IOException, InterruptedException {
    String python =
        LiveServer.setting(
            "embedserve.python",
            "EMBEDSERVE_PYTHON",
            LiveServer.repoRoot().resolve(".venv/bin/python").toString());
    List<String> texts =
        List.of("The quick brown fox jumps over the lazy dog.", "embedding parity", "Grüße aus Köln", "a");
    String script =
        String.join(
            "\n",
            "import json, sys",
            "from embedserve.client import EmbedClient",
            "with EmbedClient(sys.argv[1]) as client:",
            "    vectors = client.embed(sys.argv[2:])",
            "json.dump(vectors.tolist(), sys.stdout)");
    List<String> command = new ArrayList<>(List.of(python, "-c", script, LiveServer.target()));
    command.addAll(texts);
    Process process =
        new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    String out;
    try (InputStream stdout = process.getInputStream()) {
      ByteArrayOutputStream buffer = new ByteArrayOutputStream();
      stdout.transferTo(buffer);
      out = buffer.toString(StandardCharsets.UTF_8);
    }
    assertEquals(0, process.waitFor(), "python client failed");

    List<double[]> want = parseVectors(out);
    List<float[]> got = client.embed(texts);
    assertEquals(texts.size(), want.size());
    double worst = 0;
    for (int i = 0; i < texts.size(); i++) {
      assertEquals(want.get(i).length, got.get(i).length);
      for (int j = 0; j < got.get(i).length; j++) {
        worst = Math.max(worst, Math.abs(want.get(i)[j] - got.get(i)[j]));
      }
    }
    assertTrue(worst <= 1e-6, "max abs difference to the Python client " + worst);
  }

  /** Parses the JSON list of lists of numbers that the Python snippet prints. */
  private static List<double[]> parseVectors(String json) {
    List<double[]> rows = new ArrayList<>();
    Matcher row = Pattern.compile("\\[([^\\[\\]]*)\\]").matcher(json);
    while (row.find()) {
      String[] cells = row.group(1).split(",");
      double[] values = new double[cells.length];
      for (int i = 0; i < cells.length; i++) {
        values[i] = Double.parseDouble(cells[i].trim());
      }
      rows.add(values);
    }
    assertNotEquals(0, rows.size(), "no vectors in python output: " + json);
    return rows;
  }
}
