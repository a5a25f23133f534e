package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.embedserve.v1.CountRequest;
import dev.embedserve.v1.CountResponse;
import dev.embedserve.v1.VectorServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A balanced target of bracketed IPv6 addresses, against two fake servers on [::1]. */
class BalancedIpv6Test {
  /** Counts as many documents as its own port: which server answered. */
  private static final class PortCount extends VectorServiceGrpc.VectorServiceImplBase {
    volatile int port;

    @Override
    public void count(CountRequest request, StreamObserver<CountResponse> responses) {
      responses.onNext(CountResponse.newBuilder().setCount(port).build());
      responses.onCompleted();
    }
  }

  private static boolean ipv6Loopback() {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName("::1"))) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  private static Server serve(PortCount service) throws IOException {
    // The wildcard address: on a host with IPv6 it takes connections to [::1] too.
    Server server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(service)
            .addService(new HealthStatusManager().getHealthService()) // "" is SERVING
            .build()
            .start();
    service.port = server.getPort();
    return server;
  }

  @Test
  void bracketedAddressListIsBalanced() throws Exception {
    assumeTrue(ipv6Loopback(), "no IPv6 loopback here");
    Server first = serve(new PortCount());
    Server second = serve(new PortCount());
    String target = "[::1]:" + first.getPort() + ", [::1]:" + second.getPort();
    try (EmbedserveClient client = EmbedserveClient.builder(target).build()) {
      Set<Long> answeredBy = new TreeSet<>();
      for (int i = 0; i < 20; i++) {
        answeredBy.add(client.count("c"));
      }
      assertEquals(Set.of((long) first.getPort(), (long) second.getPort()), answeredBy);
    } finally {
      first.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      second.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
