package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.embedserve.client.EmbedserveClient.Ranked;
import dev.embedserve.v1.GetModelInfoResponse;
import dev.embedserve.v1.OverflowPolicy;
import dev.embedserve.v1.RerankRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Rerank against the server's reranker. The test server's reranker is a random tiny
 * cross-encoder, so these check the shape of the answers, not relevance. They run where the
 * server serves a reranker; EMBEDSERVE_TEST_RERANKER=1 (or {@code embedserve.test.reranker})
 * says it must (scripts/test_clients.sh starts it so), and they fail without one.
 */
@ExtendWith(LiveServer.class)
class RerankTest {
  private static final String QUERY = "cat";
  private static final List<String> DOCUMENTS =
      List.of(
          "The cat sat on the mat.",
          "Paris is the capital of France.",
          "zebra zebra zebra",
          "12345 67890",
          "A cat is a small domesticated feline.",
          "ünïcødé ✓",
          "x");

  private static EmbedserveClient client;
  private static GetModelInfoResponse info;

  @BeforeAll
  static void connect() {
    client = EmbedserveClient.builder(LiveServer.target()).build();
    info = client.modelInfo();
    boolean required =
        "1".equals(LiveServer.setting("embedserve.test.reranker", "EMBEDSERVE_TEST_RERANKER", ""));
    if (required) {
      assertTrue(
          info.hasReranker(),
          "EMBEDSERVE_TEST_RERANKER=1 but the server at " + LiveServer.target() + " serves no reranker");
    }
    assumeTrue(
        info.hasReranker(),
        "the server at "
            + LiveServer.target()
            + " serves no reranker (start it with --reranker; EMBEDSERVE_TEST_RERANKER=1 requires one)");
  }

  @AfterAll
  static void disconnect() {
    if (client != null) {
      client.close();
    }
  }

  @Test
  void ranksEveryDocumentBestFirst() {
    List<Ranked> ranked = client.rerank(QUERY, DOCUMENTS);
    assertEquals(DOCUMENTS.size(), ranked.size());
    boolean[] seen = new boolean[DOCUMENTS.size()];
    for (int i = 0; i < ranked.size(); i++) {
      Ranked r = ranked.get(i);
      if (i > 0) {
        Ranked before = ranked.get(i - 1);
        assertTrue(r.score() <= before.score(), "result " + i + " scores above result " + (i - 1));
        assertTrue(
            r.score() < before.score() || r.index() > before.index(),
            "tied results " + (i - 1) + " and " + i + " are not in request order");
      }
      assertNull(r.document(), "a document's text without returnDocuments");
      assertFalse(seen[r.index()], "document " + r.index() + " ranked twice");
      seen[r.index()] = true;
    }
  }

  @Test
  void options() {
    List<Ranked> all = client.rerank(QUERY, DOCUMENTS);
    assertEquals(all, client.rerank(QUERY, DOCUMENTS), "the same request ranked differently");

    assertEquals(all.subList(0, 2), client.rerank(QUERY, DOCUMENTS, 2, false, false));

    List<Ranked> withText = client.rerank(QUERY, DOCUMENTS, 0, false, true);
    assertEquals(DOCUMENTS.size(), withText.size());
    for (Ranked r : withText) {
      assertEquals(DOCUMENTS.get(r.index()), r.document());
    }

    assertEquals("sigmoid", info.getReranker().getActivation(), "the test reranker's activation");
    Map<Integer, Float> scores = new HashMap<>();
    all.forEach(r -> scores.put(r.index(), r.score()));
    List<Ranked> raw =
        client.rerank(
            RerankRequest.newBuilder()
                .setQuery(QUERY)
                .addAllDocuments(DOCUMENTS)
                .setRawScores(true)
                .setOverflow(OverflowPolicy.OVERFLOW_POLICY_TRUNCATE_RIGHT)
                .build());
    assertEquals(all.size(), raw.size());
    for (Ranked r : raw) {
      assertEquals(
          scores.get(r.index()), 1 / (1 + Math.exp(-r.score())), 1e-5, "document " + r.index());
    }
  }

  @Test
  void noDocumentsIsInvalidArgument() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.rerank(QUERY, List.of()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }
}
