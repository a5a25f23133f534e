package dev.embedserve.client;

import io.grpc.BindableService;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/** A fake service on a loopback port, for tests that need no model. */
final class FakeServers {
  private FakeServers() {}

  /** {@code body} run with a client of {@code fake}, served on a free port meanwhile. */
  static <T> T withFake(BindableService fake, Function<EmbedserveClient, T> body)
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
}
