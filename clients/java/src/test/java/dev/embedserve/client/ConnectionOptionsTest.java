package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.v1.EmbeddingServiceGrpc;
import dev.embedserve.v1.GetModelInfoRequest;
import dev.embedserve.v1.GetModelInfoResponse;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsServerCredentials;
import io.grpc.stub.StreamObserver;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** TLS, API key and default deadline, against an in-process TLS server (no model). */
class ConnectionOptionsTest {
  private static final char[] PASSWORD = "changeit".toCharArray();

  /** Makes a self-signed certificate for 127.0.0.1 with the JDK's keytool. */
  private static void keytool(String... args) throws Exception {
    List<String> command = new ArrayList<>();
    command.add(Paths.get(System.getProperty("java.home"), "bin", "keytool").toString());
    command.addAll(List.of(args));
    Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(process.getInputStream().readAllBytes());
    assertEquals(0, process.waitFor(), "keytool failed: " + out);
  }

  /** grpc-java dropped such a header from every call unsent: the server said "missing key". */
  @Test
  void apiKeyThatIsNotPrintableAsciiIsRefused() {
    String[][] cases = {
      {"secret\n", "control character (a line break?) at position 6"},
      {"cl\u00e9", "non-ASCII character at position 2"},
    };
    for (String[] c : cases) {
      IllegalArgumentException refused =
          assertThrows(
              IllegalArgumentException.class,
              () -> EmbedserveClient.builder("127.0.0.1:1").apiKey(c[0]));
      assertTrue(refused.getMessage().contains(c[1]), refused.getMessage());
      assertTrue(!refused.getMessage().contains(c[0]), "the key is a secret");
    }
  }

  @Test
  void tlsApiKeyAndDefaultDeadline(@TempDir Path dir) throws Exception {
    Path keystore = dir.resolve("server.p12");
    Path caFile = dir.resolve("ca.pem");
    keytool("-genkeypair", "-alias", "server", "-keyalg", "EC", "-groupname", "secp256r1",
        "-dname", "CN=embedserve test", "-ext", "san=ip:127.0.0.1,dns:localhost",
        "-validity", "1", "-storetype", "PKCS12", "-keystore", keystore.toString(),
        "-storepass", "changeit", "-keypass", "changeit");
    keytool("-exportcert", "-rfc", "-alias", "server", "-keystore", keystore.toString(),
        "-storepass", "changeit", "-file", caFile.toString());
    KeyStore store = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(keystore)) {
      store.load(in, PASSWORD);
    }
    KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    keys.init(store, PASSWORD);

    String[] authorization = new String[1];
    Deadline[] deadline = new Deadline[1];
    ServerInterceptor recordHeaders =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(
              ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            authorization[0] =
                headers.get(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER));
            return next.startCall(call, headers);
          }
        };
    EmbeddingServiceGrpc.EmbeddingServiceImplBase fake =
        new EmbeddingServiceGrpc.EmbeddingServiceImplBase() {
          @Override
          public void getModelInfo(
              GetModelInfoRequest request, StreamObserver<GetModelInfoResponse> response) {
            deadline[0] = Context.current().getDeadline();
            response.onNext(GetModelInfoResponse.newBuilder().setModelId("fake").build());
            response.onCompleted();
          }
        };
    Server server =
        Grpc.newServerBuilderForPort(
                0, TlsServerCredentials.newBuilder().keyManager(keys.getKeyManagers()).build())
            .addService(ServerInterceptors.intercept(fake, recordHeaders))
            .build()
            .start();
    String target = "127.0.0.1:" + server.getPort();
    try {
      try (EmbedserveClient client =
          EmbedserveClient.builder(target)
              .tlsCaFile(caFile)
              .apiKey("secret-key")
              .timeout(Duration.ofSeconds(7))
              .build()) {
        assertEquals("fake", client.modelInfo().getModelId());
        assertEquals("Bearer secret-key", authorization[0]);
        long left = deadline[0].timeRemaining(TimeUnit.MILLISECONDS);
        assertTrue(left > 5000 && left <= 7000, "deadline " + left + " ms away, want about 7 s");
      }
      // A plaintext client cannot talk to the TLS server.
      try (EmbedserveClient plaintext =
          EmbedserveClient.builder(target).timeout(Duration.ofSeconds(2)).build()) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, plaintext::modelInfo);
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      }
    } finally {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
