package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.v1.EmbedRequest;
import dev.embedserve.v1.EmbeddingServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Two real servers behind one "host:port,host:port" target. */
@ExtendWith(LiveServer.class)
class BalancingTest {

  /** Counts the calls each server answered, by the transport's remote address. */
  static final class PeerCounter implements ClientInterceptor {
    final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
        @Override
        public void start(Listener<RespT> listener, Metadata headers) {
          ClientCall<ReqT, RespT> call = this;
          super.start(
              new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                @Override
                public void onClose(Status status, Metadata trailers) {
                  SocketAddress peer = call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR);
                  if (status.isOk() && peer instanceof InetSocketAddress address) {
                    String key = "127.0.0.1:" + address.getPort();
                    counts.computeIfAbsent(key, k -> new AtomicInteger()).incrementAndGet();
                  }
                  super.onClose(status, trailers);
                }
              },
              headers);
        }
      };
    }

    int count(String target) {
      AtomicInteger n = counts.get(target);
      return n == null ? 0 : n.get();
    }
  }

  /**
   * The second server is EMBEDSERVE_TEST_TARGET_2 (or {@code embedserve.test.target2}) when set,
   * and then not stopped; else one started here.
   */
  @Test
  void roundRobinSpreadsCallsAndSurvivesAStoppedServer() throws Exception {
    String first = LiveServer.target();
    String given = LiveServer.setting("embedserve.test.target2", "EMBEDSERVE_TEST_TARGET_2", null);
    LiveServer.Running second = given == null ? LiveServer.Running.start() : null;
    String secondTarget = given == null ? second.target : given;
    boolean stopped = given != null;
    try (EmbedserveClient client = EmbedserveClient.builder(first + "," + secondTarget).build()) {
      PeerCounter counter = new PeerCounter();
      EmbeddingServiceGrpc.EmbeddingServiceBlockingStub stub =
          EmbeddingServiceGrpc.newBlockingStub(
              ClientInterceptors.intercept(client.channel(), counter));
      EmbedRequest request = EmbedRequest.newBuilder().addInputs("round robin").build();
      for (int i = 0; i < 40; i++) {
        assertEquals(1, stub.embed(request).getEmbeddingsCount());
      }
      assertTrue(
          counter.count(first) >= 10 && counter.count(secondTarget) >= 10,
          "40 calls were spread as " + counter.counts);
      if (second == null) {
        return; // not ours to stop
      }
      second.close(); // SIGTERM: it drains and exits
      stopped = true;
      int before = counter.count(first);
      for (int i = 0; i < 20; i++) {
        assertEquals(1, stub.embed(request).getEmbeddingsCount());
      }
      assertEquals(before + 20, counter.count(first), "calls after the stop: " + counter.counts);
    } finally {
      if (!stopped) {
        second.close();
      }
    }
  }
}
