package dev.embedserve.client;

import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.limit;
import static dev.embedserve.client.Vectors.rerank;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.embedserve.client.EmbedserveClient.Hit;
import dev.embedserve.client.EmbedserveClient.Ranked;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.EmbedOptions;
import dev.embedserve.v1.GetModelInfoResponse;
import dev.embedserve.v1.OverflowPolicy;
import dev.embedserve.v1.RerankRequest;
import dev.embedserve.v1.SearchBatchRequest;
import dev.embedserve.v1.SearchMode;
import dev.embedserve.v1.SearchRequest;
import dev.embedserve.v1.SearchRerank;
import dev.embedserve.v1.Task;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.function.Executable;
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

  /** The documents of the reranked searches, ids "d0", "d1", ... */
  private static final List<String> SEARCH_TEXTS =
      List.of(
          "The cat sat on the mat.",
          "A cat is a small domesticated feline.",
          "Dogs bark at the postman.",
          "Paris is the capital of France.",
          "The stock market fell sharply today.",
          "Kittens sleep most of the day.",
          "A recipe for garlic pasta.",
          "The rocket reached orbit at dawn.");

  /** A hit's id and score, to compare reranked hits. */
  private record Scored(String id, float score) {}

  /**
   * What a search reranking {@code hits} (a first stage, best first) should answer: them scored by
   * rerank on their texts at payload[key], best first, ties in the first stage's order.
   */
  private static List<Scored> rerankedHits(String query, List<Hit> hits, String key) {
    List<String> texts = new ArrayList<>();
    for (Hit hit : hits) {
      Object text = hit.payload().get(key);
      assertTrue(text instanceof String s && !s.isEmpty(), hit.id() + " has no text at " + key);
      texts.add((String) text);
    }
    List<Scored> want = new ArrayList<>();
    for (Ranked r : client.rerank(query, texts)) {
      want.add(new Scored(hits.get(r.index()).id(), r.score()));
    }
    return want;
  }

  /**
   * {@code got} are the first {@code n} of {@code want}, as far as ties allow: the same scores
   * position by position (within 1e-5), each hit with its own score in want, no id twice, scores
   * not increasing. The tiny bfloat16 test reranker ties often, and a tie at the cut may take any
   * of the tied hits.
   */
  private static void assertReranked(String what, List<Hit> got, List<Scored> want, int n) {
    String both = what + ": got " + got.stream().map(h -> h.id() + "=" + h.score()).toList()
        + ", want the first " + n + " of " + want;
    assertEquals(n, got.size(), both);
    Map<String, Float> wantScores = new HashMap<>();
    want.forEach(w -> wantScores.put(w.id(), w.score()));
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < n; i++) {
      Hit hit = got.get(i);
      assertEquals(want.get(i).score(), hit.score(), 1e-5, both);
      assertTrue(wantScores.containsKey(hit.id()), both);
      assertEquals(wantScores.get(hit.id()), hit.score(), 1e-5, both);
      assertTrue(seen.add(hit.id()), both);
      if (i > 0) {
        assertTrue(hit.score() <= got.get(i - 1).score(), both);
      }
    }
  }

  private static void assertRefused(Status.Code code, Executable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
    assertEquals(code, e.getStatus().getCode(), e.getMessage());
  }

  @Test
  void searchRerankReordersTheBestHits() {
    String query = "a cat on a mat";
    String stored = VectorServiceTest.uniqueName("search_rerank");
    String bare = VectorServiceTest.uniqueName("search_rerank_bare");
    List<Document> docs = new ArrayList<>();
    for (int i = 0; i < SEARCH_TEXTS.size(); i++) {
      docs.add(document("d" + i, SEARCH_TEXTS.get(i), Map.of("body", SEARCH_TEXTS.get(i))));
    }
    client.createCollection(stored);
    try {
      client.createCollection(bare);
      try {
        client.upsert(stored, docs, WriteOptions.newBuilder().setStoreText(true).build());
        client.upsert(bare, docs);

        // Every document, by the first stage alone, then reranked here.
        List<Hit> plain = client.search(stored, query, null, limit(docs.size()));
        assertEquals(docs.size(), plain.size());
        List<Scored> want = rerankedHits(query, plain, "text");

        assertReranked(
            "rerank()", client.search(stored, query, null, limit(3), rerank()), want, 3);
        assertReranked(
            "rerank(0, null)",
            client.search(stored, query, SearchMode.SEARCH_MODE_DENSE, null, limit(3), rerank(0, null)),
            want,
            3);
        // A batch's searches take it too.
        SearchRequest one =
            SearchRequest.newBuilder().setText(query).setParams(limit(3)).setRerank(rerank()).build();
        List<List<Hit>> batch =
            client.searchBatch(
                SearchBatchRequest.newBuilder()
                    .setCollection(stored)
                    .addSearches(one)
                    .addSearches(one)
                    .build());
        assertEquals(2, batch.size());
        for (List<Hit> hits : batch) {
          assertReranked("searchBatch", hits, want, 3);
        }

        // Four candidates: the reranker reads the first stage's best four alone.
        assertReranked(
            "rerank(4, null)",
            client.search(stored, query, null, limit(3), rerank(4, null)),
            rerankedHits(query, plain.subList(0, 4), "text"),
            3);

        // The reranker reads the query's text: a vector query is refused, and so is diversity.
        float[] vector =
            client
                .embed(List.of(query), EmbedOptions.newBuilder().setTask(Task.TASK_QUERY).build())
                .get(0);
        assertRefused(
            Status.Code.INVALID_ARGUMENT,
            () ->
                client.search(
                    SearchRequest.newBuilder()
                        .setCollection(stored)
                        .setVector(Vectors.vector(vector))
                        .setRerank(rerank())
                        .build()));
        assertRefused(
            Status.Code.INVALID_ARGUMENT,
            () ->
                client.search(
                    stored, query, null, limit(3).toBuilder().setDiversity(0.5f).build(), rerank()));
        assertRefused(Status.Code.INVALID_ARGUMENT, () -> rerank(-1, null));

        // Written without store_text, the documents keep no "text" to read; a text key names the
        // field that holds it.
        assertRefused(
            Status.Code.FAILED_PRECONDITION,
            () -> client.search(bare, query, null, limit(3), rerank()));
        List<Hit> bodies = client.search(bare, query, null, limit(docs.size()));
        SearchRerank byBody = rerank(0, "body");
        assertEquals("body", byBody.getTextKey());
        assertFalse(byBody.hasCandidates());
        assertReranked(
            "rerank(0, \"body\")",
            client.search(bare, query, null, limit(3), byBody),
            rerankedHits(query, bodies, "body"),
            3);
      } finally {
        client.deleteCollection(bare);
      }
    } finally {
      client.deleteCollection(stored);
    }
  }
}
