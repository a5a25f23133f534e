package dev.embedserve.client;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The server the integration tests talk to: EMBEDSERVE_TEST_TARGET (system property
 * {@code embedserve.test.target} or environment variable), or else one started here from the
 * repository's virtualenv ({@code ../../.venv/bin/embedserve}, or EMBEDSERVE_BIN) once for the
 * whole test run and stopped when it ends.
 */
public final class LiveServer implements BeforeAllCallback {
  private static volatile String target;

  /** "host:port" of the server under test (after the extension ran). */
  public static String target() {
    if (target == null) {
      throw new IllegalStateException("annotate the test class with @ExtendWith(LiveServer.class)");
    }
    return target;
  }

  /** The repository root (clients/java/../..). */
  public static Path repoRoot() {
    return Paths.get(System.getProperty("embedserve.repo", "../..")).toAbsolutePath().normalize();
  }

  /** A setting from the system property {@code property}, else the environment variable. */
  public static String setting(String property, String env, String fallback) {
    String value = System.getProperty(property);
    if (value == null || value.isEmpty()) {
      value = System.getenv(env);
    }
    return value == null || value.isEmpty() ? fallback : value;
  }

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    Running running =
        context
            .getRoot()
            .getStore(ExtensionContext.Namespace.GLOBAL)
            .getOrComputeIfAbsent(LiveServer.class, key -> Running.startOrUse(), Running.class);
    target = running.target;
  }

  /** Stored in the root store: closed (server stopped) when the test run ends. */
  static final class Running implements AutoCloseable {
    final String target;
    private final Process process;
    private final Path dataDir;

    private Running(String target, Process process, Path dataDir) {
      this.target = target;
      this.process = process;
      this.dataDir = dataDir;
    }

    static Running startOrUse() {
      String given = setting("embedserve.test.target", "EMBEDSERVE_TEST_TARGET", null);
      if (given != null) {
        return new Running(given, null, null);
      }
      try {
        return start();
      } catch (IOException e) {
        throw new IllegalStateException("starting the embedserve server: " + e.getMessage(), e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while starting the server", e);
      }
    }

    static Running start() throws IOException, InterruptedException {
      Path bin =
          Paths.get(
              setting(
                  "embedserve.bin",
                  "EMBEDSERVE_BIN",
                  repoRoot().resolve(".venv/bin/embedserve").toString()));
      if (!Files.isExecutable(bin)) {
        throw new IllegalStateException(
            "no server to test against: set EMBEDSERVE_TEST_TARGET or EMBEDSERVE_BIN, or create "
                + bin
                + " (./dev test)");
      }
      int port;
      try (ServerSocket socket = new ServerSocket(0)) {
        port = socket.getLocalPort();
      }
      Path dataDir = Files.createTempDirectory("embedserve-java-test-");
      Path log = dataDir.resolve("server.log");
      ProcessBuilder builder =
          new ProcessBuilder(
                  List.of(
                      bin.toString(), "serve", "--model", "minilm", "--host", "127.0.0.1",
                      "--port", Integer.toString(port), "--data-dir", dataDir.toString(),
                      "--grace-period-s", "2"))
              .redirectErrorStream(true)
              .redirectOutput(log.toFile());
      builder.environment().put("HF_HUB_OFFLINE", "1");
      Process process = builder.start();
      Running running = new Running("127.0.0.1:" + port, process, dataDir);
      try (EmbedserveClient client = EmbedserveClient.builder(running.target).build()) {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (true) {
          if (!process.isAlive()) {
            throw new IllegalStateException(
                "server exited (" + process.exitValue() + ") before serving; log:\n" + read(log));
          }
          try {
            client.waitUntilServing(Duration.ofSeconds(1));
            break;
          } catch (IllegalStateException notYet) {
            if (System.nanoTime() > end) {
              throw new IllegalStateException("server not SERVING after 180 s; log:\n" + read(log));
            }
          }
        }
      } catch (RuntimeException | InterruptedException e) {
        running.close();
        throw e;
      }
      return running;
    }

    private static String read(Path log) throws IOException {
      return Files.readString(log, StandardCharsets.UTF_8);
    }

    @Override
    public void close() throws InterruptedException, IOException {
      if (process == null) {
        return;
      }
      process.destroy(); // SIGTERM: the server drains and exits
      if (!process.waitFor(15, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor();
      }
      try (Stream<Path> files = Files.walk(dataDir)) {
        files.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
      }
    }
  }
}
