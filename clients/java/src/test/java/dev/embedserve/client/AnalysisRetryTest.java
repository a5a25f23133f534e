package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.embedserve.v1.ClusterRequest;
import dev.embedserve.v1.ClusterResponse;
import dev.embedserve.v1.FindDuplicatesRequest;
import dev.embedserve.v1.FindDuplicatesResponse;
import dev.embedserve.v1.ScrollRequest;
import dev.embedserve.v1.ScrollResponse;
import dev.embedserve.v1.StoredDocument;
import dev.embedserve.v1.VectorServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.stub.StreamObserver;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Which analysis calls a balanced client retries: a server that refuses the first attempt of
 * every call with UNAVAILABLE (as a draining one does) stands in for a failover.
 */
class AnalysisRetryTest {
  /** Answers each method's second and later calls; the first of each is UNAVAILABLE. */
  private static final class RefusesOnce extends VectorServiceGrpc.VectorServiceImplBase {
    final Map<String, AtomicInteger> calls = new ConcurrentHashMap<>();

    private boolean refuse(String method, StreamObserver<?> responses) {
      if (calls.computeIfAbsent(method, m -> new AtomicInteger()).incrementAndGet() == 1) {
        responses.onError(Status.UNAVAILABLE.withDescription("draining").asRuntimeException());
        return true;
      }
      return false;
    }

    int calls(String method) {
      AtomicInteger n = calls.get(method);
      return n == null ? 0 : n.get();
    }

    @Override
    public void scroll(ScrollRequest request, StreamObserver<ScrollResponse> responses) {
      if (!refuse("Scroll", responses)) {
        responses.onNext(
            ScrollResponse.newBuilder()
                .addDocuments(StoredDocument.newBuilder().setId("only"))
                .build());
        responses.onCompleted();
      }
    }

    @Override
    public void findDuplicates(
        FindDuplicatesRequest request, StreamObserver<FindDuplicatesResponse> responses) {
      if (!refuse("FindDuplicates", responses)) {
        responses.onNext(FindDuplicatesResponse.newBuilder().setPointsScanned(7).build());
        responses.onCompleted();
      }
    }

    @Override
    public void cluster(ClusterRequest request, StreamObserver<ClusterResponse> responses) {
      if (!refuse("Cluster", responses)) {
        responses.onNext(ClusterResponse.newBuilder().setK(2).build());
        responses.onCompleted();
      }
    }
  }

  private RefusesOnce fake;
  private Server server;
  private EmbedserveClient client;

  @BeforeEach
  void start() throws Exception {
    fake = new RefusesOnce();
    server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(fake)
            .addService(new HealthStatusManager().getHealthService()) // SERVING
            .build()
            .start();
    // A dns:/// target turns balancing, and so the retry policy, on.
    client = EmbedserveClient.builder("dns:///127.0.0.1:" + server.getPort()).build();
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void scrollAndFindDuplicatesAreRetried() {
    assertEquals("only", client.scroll("c", null, 10).documents().get(0).id());
    assertEquals(2, fake.calls("Scroll"));
    assertEquals(7, client.findDuplicates("c", 0.9f).getPointsScanned());
    assertEquals(2, fake.calls("FindDuplicates"));
  }

  @Test
  void clusterIsNotRetried() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.cluster("c"));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertEquals("draining", e.getStatus().getDescription());
    assertEquals(1, fake.calls("Cluster"));
    assertEquals(2, client.cluster("c").getK()); // the caller's own second try
  }
}
