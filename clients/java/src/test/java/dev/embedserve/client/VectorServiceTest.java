package dev.embedserve.client;

import static dev.embedserve.client.Vectors.anyObject;
import static dev.embedserve.client.Vectors.atLeast;
import static dev.embedserve.client.Vectors.datetimeRange;
import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.geoBox;
import static dev.embedserve.client.Vectors.geoPolygon;
import static dev.embedserve.client.Vectors.geoRadius;
import static dev.embedserve.client.Vectors.hasId;
import static dev.embedserve.client.Vectors.ids;
import static dev.embedserve.client.Vectors.isEmpty;
import static dev.embedserve.client.Vectors.limit;
import static dev.embedserve.client.Vectors.match;
import static dev.embedserve.client.Vectors.matchAny;
import static dev.embedserve.client.Vectors.matchExcept;
import static dev.embedserve.client.Vectors.matchText;
import static dev.embedserve.client.Vectors.matchTextAny;
import static dev.embedserve.client.Vectors.must;
import static dev.embedserve.client.Vectors.mustNot;
import static dev.embedserve.client.Vectors.place;
import static dev.embedserve.client.Vectors.proximity;
import static dev.embedserve.client.Vectors.recency;
import static dev.embedserve.client.Vectors.split;
import static dev.embedserve.client.Vectors.textExample;
import static dev.embedserve.client.Vectors.valuesCount;
import static dev.embedserve.client.Vectors.vectorExample;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.client.EmbedserveClient.Hit;
import dev.embedserve.client.EmbedserveClient.HitGroup;
import dev.embedserve.client.EmbedserveClient.IngestAck;
import dev.embedserve.client.EmbedserveClient.ScrollPage;
import dev.embedserve.client.EmbedserveClient.Stored;
import dev.embedserve.v1.Alias;
import dev.embedserve.v1.CollectionConfig;
import dev.embedserve.v1.CollectionInfo;
import dev.embedserve.v1.Condition;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.EmbedOptions;
import dev.embedserve.v1.FacetValue;
import dev.embedserve.v1.GeoPoint;
import dev.embedserve.v1.GetModelInfoResponse;
import dev.embedserve.v1.GetRequest;
import dev.embedserve.v1.GroupBy;
import dev.embedserve.v1.Filter;
import dev.embedserve.v1.PayloadIndexKind;
import dev.embedserve.v1.Proximity;
import dev.embedserve.v1.QueryParams;
import dev.embedserve.v1.RangeCondition;
import dev.embedserve.v1.Recency;
import dev.embedserve.v1.RecommendRequest;
import dev.embedserve.v1.RecommendStrategy;
import dev.embedserve.v1.ScrollRequest;
import dev.embedserve.v1.SearchBatchRequest;
import dev.embedserve.v1.SearchMode;
import dev.embedserve.v1.SearchRequest;
import dev.embedserve.v1.Task;
import dev.embedserve.v1.UpdateCollectionRequest;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The VectorService scenario against the live server: a generated corpus of four topics is
 * ingested once into a collection of its own (unique per run: the server may be shared), then
 * searched, recommended from, re-ingested and counted.
 */
@ExtendWith(LiveServer.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class VectorServiceTest {
  private static final int DIMS = 384;
  private static final int PER_TOPIC = 50; // 200 documents
  private static final Map<String, List<String>> TOPICS = new LinkedHashMap<>();

  static {
    TOPICS.put("cooking", List.of("recipe", "oven", "garlic", "pasta", "sauce", "bakery", "kitchen", "spices"));
    TOPICS.put("finance", List.of("stock", "interest rate", "bond", "inflation", "dividend", "investor", "bank", "loan"));
    TOPICS.put("football", List.of("goal", "striker", "referee", "penalty", "league", "stadium", "midfielder", "goalkeeper"));
    TOPICS.put("space", List.of("rocket", "orbit", "galaxy", "astronaut", "telescope", "planet", "satellite", "moon"));
  }

  private static EmbedserveClient client;
  private static String collection;
  private static final List<Document> CORPUS = corpus();
  private static final AtomicLong SEQUENCE = new AtomicLong();

  /** PER_TOPIC short sentences per topic: ids "topic-n", payload {"topic": topic, "n": n}. */
  private static List<Document> corpus() {
    List<Document> docs = new ArrayList<>();
    TOPICS.forEach(
        (topic, words) -> {
          for (int n = 0; n < PER_TOPIC; n++) {
            String a = words.get(n % words.size());
            String b = words.get((n / words.size() + n + 1) % words.size());
            docs.add(
                document(
                    topic + "-" + n,
                    "A short note about the " + a + " and the " + b + ", number " + n + ".",
                    Map.of("topic", topic, "n", n)));
          }
        });
    return List.copyOf(docs);
  }

  static String uniqueName(String purpose) {
    return "java_" + purpose + "_" + ProcessHandle.current().pid() + "_" + System.nanoTime()
        + "_" + SEQUENCE.incrementAndGet();
  }

  @BeforeAll
  static void ingestCorpus() {
    client = EmbedserveClient.builder(LiveServer.target()).build();
    collection = uniqueName("scenario");
    CollectionInfo info =
        client.createCollection(
            collection,
            CollectionConfig.newBuilder()
                .putPayloadIndexes("topic", PayloadIndexKind.PAYLOAD_INDEX_KIND_KEYWORD)
                .build());
    assertEquals(collection, info.getName());
    assertEquals(DIMS, info.getConfig().getDimensions());
    ingestChecked(collection, CORPUS, 32);
  }

  @AfterAll
  static void cleanUp() {
    try {
      client.deleteCollection(collection);
    } finally {
      client.close();
    }
  }

  /** Ingests docs and checks the acknowledgements: in order, one per batch, with its ids. */
  private static void ingestChecked(String name, List<Document> docs, int batchSize) {
    List<IngestAck> acks = new ArrayList<>();
    // A lazy iterator: documents are produced only as slots free up.
    Iterable<Document> lazy =
        () ->
            new Iterator<>() {
              private int next = 0;

              @Override
              public boolean hasNext() {
                return next < docs.size();
              }

              @Override
              public Document next() {
                if (!hasNext()) {
                  throw new NoSuchElementException();
                }
                return docs.get(next++);
              }
            };
    long total = client.ingest(name, lazy, WriteOptions.getDefaultInstance(), batchSize, 4, acks::add);
    assertEquals(docs.size(), total);
    assertEquals((docs.size() + batchSize - 1) / batchSize, acks.size());
    List<String> acked = new ArrayList<>();
    for (int i = 0; i < acks.size(); i++) {
      IngestAck ack = acks.get(i);
      assertEquals(i, ack.index());
      assertEquals(Integer.toString(i), ack.response().getBatchId());
      acked.addAll(ack.ids());
      assertEquals(acked.size(), ack.totalAcknowledged());
    }
    assertEquals(docs.stream().map(Document::getId).toList(), acked);
  }

  private static String topicOf(Map<String, Object> payload) {
    return (String) payload.get("topic");
  }

  @Test
  @Order(1)
  void countEqualsTheNumberIngested() {
    assertEquals(CORPUS.size(), client.count(collection));
    assertEquals(PER_TOPIC, client.count(collection, must(match("topic", "space"))));
    assertEquals(CORPUS.size(), client.getCollection(collection).getPointsCount());
    assertTrue(client.listCollections().contains(collection));
  }

  @Test
  @Order(2)
  void searchByTextFindsTheRightTopicFirst() {
    Map<String, String> queries =
        Map.of(
            "space", "astronauts travelling into orbit around a planet",
            "cooking", "how to cook pasta with garlic sauce",
            "football", "the striker scored a penalty goal",
            "finance", "bond yields, inflation and the stock market");
    queries.forEach(
        (topic, query) -> {
          List<Hit> hits = client.search(collection, query, 5);
          assertEquals(5, hits.size(), query);
          assertEquals(topic, topicOf(hits.get(0).payload()), query + ": " + hits.get(0));
          assertTrue(hits.get(0).id().startsWith(topic + "-"), query);
          for (int i = 1; i < hits.size(); i++) {
            assertTrue(hits.get(i).score() <= hits.get(i - 1).score(), "sorted by score");
          }
        });
  }

  @Test
  @Order(3)
  void searchWithFilterAndByVector() {
    List<Hit> filtered = client.search(collection, "a rocket launch", must(match("topic", "cooking")), limit(7));
    assertEquals(7, filtered.size());
    filtered.forEach(hit -> assertEquals("cooking", topicOf(hit.payload()), hit.id()));

    List<Stored> stored = client.get(collection, List.of("finance-7", "no-such-id", "space-3"), true);
    assertEquals(List.of("finance-7", "space-3"), stored.stream().map(Stored::id).toList());
    assertEquals(DIMS, stored.get(0).vector().length);
    assertEquals("finance", topicOf(stored.get(0).payload()));
    assertEquals(7.0, stored.get(0).payload().get("n"));

    List<Hit> hits =
        client.search(
            collection,
            stored.get(0).vector(),
            null,
            QueryParams.newBuilder().setLimit(3).setWithVectors(true).build());
    assertEquals("finance-7", hits.get(0).id());
    assertTrue(hits.get(0).score() > 0.999f, "score " + hits.get(0).score());
    assertArrayEquals(stored.get(0).vector(), hits.get(0).vector(), 1e-6f);
  }

  @Test
  @Order(4)
  void recommendByIdsExcludesTheExamples() {
    List<String> positive = List.of("space-1", "space-2", "space-3");
    List<String> negative = List.of("cooking-1");
    List<Hit> hits = client.recommend(collection, positive, negative, 10);
    assertEquals(10, hits.size());
    hits.forEach(
        hit -> {
          assertFalse(positive.contains(hit.id()), "example came back: " + hit.id());
          assertFalse(negative.contains(hit.id()), "example came back: " + hit.id());
        });
    assertEquals("space", topicOf(hits.get(0).payload()));

    for (RecommendStrategy strategy :
        List.of(
            RecommendStrategy.RECOMMEND_STRATEGY_BEST_SCORE,
            RecommendStrategy.RECOMMEND_STRATEGY_SUM_SCORES)) {
      List<Hit> byStrategy =
          client.recommend(collection, ids(positive), ids(negative), strategy, null, limit(10));
      assertEquals(10, byStrategy.size(), strategy.name());
      byStrategy.forEach(hit -> assertFalse(positive.contains(hit.id()), strategy + ": " + hit.id()));
      assertEquals("space", topicOf(byStrategy.get(0).payload()), strategy.name());
    }

    List<Hit> byText =
        client.recommend(
            collection,
            List.of(textExample("a goalkeeper in the stadium")),
            List.of(),
            RecommendStrategy.RECOMMEND_STRATEGY_UNSPECIFIED,
            mustNot(hasId("football-0")),
            limit(3));
    assertEquals(3, byText.size());
    assertEquals("football", topicOf(byText.get(0).payload()));
    byText.forEach(hit -> assertFalse(hit.id().equals("football-0")));
  }

  @Test
  @Order(5)
  void reIngestLeavesTheCountUnchanged() {
    ingestChecked(collection, CORPUS, 50);
    assertEquals(CORPUS.size(), client.count(collection));
  }

  @Test
  @Order(6)
  void deleteByIdsAndByFilter() {
    client.delete(collection, List.of("space-1", "space-2"));
    assertEquals(CORPUS.size() - 2, client.count(collection));
    client.delete(collection, List.of(), must(match("topic", "finance")));
    assertEquals(CORPUS.size() - 2 - PER_TOPIC, client.count(collection));
  }

  @Test
  void facetCountsTheTopicsOfAFilter() {
    // Finance may have been deleted by another test: left out of the filter.
    Filter kept = must(match("n", 3L), matchAny("topic", "cooking", "football", "space"));
    List<FacetValue> topics = client.facet(collection, "topic", kept, 2);
    assertEquals(List.of("cooking", "football"), topics.stream().map(FacetValue::getText).toList());
    assertEquals(List.of(1L, 1L), topics.stream().map(FacetValue::getCount).toList());
  }

  @Test
  void keywordAndHybridSearch() {
    String name = uniqueName("keywords");
    CollectionInfo info =
        client.createCollection(
            name,
            CollectionConfig.newBuilder()
                .setBm25(true)
                .putPayloadIndexes("title", PayloadIndexKind.PAYLOAD_INDEX_KIND_TEXT)
                .build());
    assertTrue(info.getConfig().getBm25());
    try {
      client.upsert(
          name,
          List.of(
              document("code", "Error E-2207 means the filter is clogged", Map.of("title", "Error Codes")),
              document("filter", "Clean the coffee filter every week", Map.of("title", "Cleaning")),
              document("tea", "Green tea steeps for two minutes", Map.of("title", "Tea codes"))));
      List<Hit> keyword =
          client.search(name, "E-2207 filter", SearchMode.SEARCH_MODE_KEYWORD, null, null);
      assertEquals(List.of("code", "filter"), keyword.stream().map(Hit::id).toList());
      assertTrue(keyword.get(0).score() > keyword.get(1).score());
      List<Hit> hybrid =
          client.search(name, "E-2207", SearchMode.SEARCH_MODE_HYBRID, null, Vectors.limit(3));
      assertEquals(3, hybrid.size());
      assertEquals("code", hybrid.get(0).id());
      List<List<Hit>> batch =
          client.searchBatch(
              SearchBatchRequest.newBuilder()
                  .setCollection(name)
                  .addSearches(SearchRequest.newBuilder().setText("E-2207").setMode(SearchMode.SEARCH_MODE_KEYWORD))
                  .addSearches(SearchRequest.newBuilder().setText("green tea").setMode(SearchMode.SEARCH_MODE_KEYWORD))
                  .build());
      assertEquals(List.of("code", "tea"), batch.stream().map(hits -> hits.get(0).id()).toList());
      List<Hit> titled = client.search(name, "clogged", must(matchText("title", "codes")), null);
      assertEquals(List.of("code", "tea"), titled.stream().map(Hit::id).sorted().toList());
      client.updatePayload(name, List.of("tea"), null, Map.of("stock", 3), List.of("title"));
      Stored tea = client.get(name, List.of("tea"), false).get(0);
      assertEquals(Map.of("stock", 3.0), tea.payload());
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void searchGroupsGivesTheBestPassagesPerDocument() {
    String name = uniqueName("groups");
    client.createCollection(name, CollectionConfig.newBuilder().setBm25(true).build());
    try {
      Map<String, List<String>> passages = new LinkedHashMap<>();
      passages.put("space", List.of(
          "The rocket lifted off and reached orbit.",
          "Astronauts trained for the long flight to the moon.",
          "A telescope photographed a distant galaxy."));
      passages.put("cooking", List.of(
          "Boil the pasta and stir in the garlic sauce.",
          "Bake the bread in a hot oven.",
          "Season the soup with fresh herbs."));
      passages.put("football", List.of(
          "The striker scored a late penalty goal.",
          "The goalkeeper saved a shot in the stadium.",
          "The referee showed the defender a red card."));
      List<Document> docs = passageDocuments(passages);
      client.upsert(name, docs);

      String query = "a rocket launch into orbit";
      List<HitGroup> groups = client.searchGroups(name, query, "doc", 2, null, limit(2));
      assertEquals(2, groups.size(), groups.toString());
      assertEquals("space", groups.get(0).key());
      assertEquals(2, groups.stream().map(HitGroup::key).distinct().count(), "distinct keys");
      // The same hits as a plain search, taken per document in rank order.
      List<Hit> ranked = client.search(name, query, docs.size());
      for (HitGroup group : groups) {
        String doc = (String) group.key();
        assertEquals(2, group.hits().size(), doc);
        group.hits().forEach(hit -> assertEquals(doc, hit.payload().get("doc"), hit.id()));
        List<String> best =
            ranked.stream().map(Hit::id).filter(id -> id.startsWith(doc + "-")).limit(2).toList();
        assertEquals(best, group.hits().stream().map(Hit::id).toList(), doc);
      }
      assertTrue(groups.get(0).hits().get(0).score() >= groups.get(1).hits().get(0).score(), "groups by best score");
      assertEquals(
          ranked.stream().map(hit -> hit.payload().get("doc")).distinct().limit(2).toList(),
          groups.stream().map(HitGroup::key).toList());

      // Integer keys come back as Long; by vector, the stored document is its group's best hit.
      float[] vector = client.get(name, List.of("cooking-1"), true).get(0).vector();
      List<HitGroup> byPart = client.searchGroups(name, vector, "part", 2, null, limit(3));
      assertEquals(Long.valueOf(1), byPart.get(0).key());
      assertEquals(Set.of(0L, 1L, 2L), Set.copyOf(byPart.stream().map(HitGroup::key).toList()));
      assertEquals("cooking-1", byPart.get(0).hits().get(0).id());
      for (HitGroup group : byPart) {
        assertTrue(group.key() instanceof Long, String.valueOf(group.key()));
        assertEquals(2, group.hits().size());
        group.hits().forEach(hit -> assertEquals(((Long) group.key()).doubleValue(), hit.payload().get("part")));
      }

      // Keyword mode: only the documents holding the word form groups.
      List<HitGroup> keyword =
          client.searchGroups(name, "rocket", SearchMode.SEARCH_MODE_KEYWORD, "doc", 2, null, limit(3));
      assertEquals(List.of("space"), keyword.stream().map(HitGroup::key).toList());
      assertEquals(List.of("space-0"), keyword.get(0).hits().stream().map(Hit::id).toList());

      StatusRuntimeException offset =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.searchGroups(
                  name, query, "doc", 2, null, QueryParams.newBuilder().setLimit(2).setOffset(1).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, offset.getStatus().getCode());
      StatusRuntimeException ungrouped =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.searchGroups(SearchRequest.newBuilder().setCollection(name).setText(query).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, ungrouped.getStatus().getCode());

      // searchBatch answers hits and refuses grouped searches; the stub answers their groups.
      SearchBatchRequest groupedBatch =
          SearchBatchRequest.newBuilder()
              .setCollection(name)
              .addSearches(
                  SearchRequest.newBuilder()
                      .setText(query)
                      .setGroupBy(GroupBy.newBuilder().setKey("doc").setSize(2))
                      .setParams(limit(2)))
              .build();
      assertEquals(
          groups.stream().map(HitGroup::key).toList(),
          client.vectorStub().searchBatch(groupedBatch).getResponses(0).getGroupsList().stream()
              .map(dev.embedserve.v1.HitGroup::getText)
              .toList());
      assertRefused(Status.Code.INVALID_ARGUMENT, () -> client.searchBatch(groupedBatch));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void recommendGroupsGroupsTheRecommendRanking() {
    String name = uniqueName("recommend_groups");
    client.createCollection(name, CollectionConfig.getDefaultInstance());
    try {
      Map<String, List<String>> passages = new LinkedHashMap<>();
      passages.put("space", List.of(
          "The rocket lifted off and reached orbit.",
          "Astronauts trained for the long flight to the moon.",
          "A telescope photographed a distant galaxy.",
          "The capsule splashed down in the ocean."));
      passages.put("cooking", List.of(
          "Boil the pasta and stir in the garlic sauce.",
          "Bake the bread in a hot oven.",
          "Season the soup with fresh herbs.",
          "Grate parmesan over the spaghetti."));
      passages.put("football", List.of(
          "The striker scored a late penalty goal.",
          "The goalkeeper saved a shot in the stadium.",
          "The referee showed the defender a red card.",
          "The league table changed after the derby."));
      client.upsert(name, passageDocuments(passages));

      List<String> positive = List.of("space-0");
      QueryParams exact = QueryParams.newBuilder().setLimit(2).setExact(true).build();
      List<HitGroup> groups =
          client.recommendGroups(
              name, ids(positive), List.of(), RecommendStrategy.RECOMMEND_STRATEGY_UNSPECIFIED,
              "doc", 2, null, exact);
      assertEquals(2, groups.size(), groups.toString());
      for (HitGroup group : groups) {
        assertTrue(group.hits().size() >= 1 && group.hits().size() <= 2, group.toString());
        group.hits().forEach(
            hit -> {
              assertEquals(group.key(), hit.payload().get("doc"), hit.id());
              assertFalse(positive.contains(hit.id()), "example came back: " + hit.id());
            });
      }

      // The plain ranking grouped here: its first two docs, their best two hits each.
      List<Hit> ranked =
          client.recommend(
              name, ids(positive), List.of(), RecommendStrategy.RECOMMEND_STRATEGY_UNSPECIFIED, null,
              QueryParams.newBuilder().setLimit(100).setExact(true).build());
      Map<Object, List<String>> expected = new LinkedHashMap<>();
      for (Hit hit : ranked) {
        Object doc = hit.payload().get("doc");
        if (!expected.containsKey(doc) && expected.size() == 2) {
          continue;
        }
        List<String> best = expected.computeIfAbsent(doc, key -> new ArrayList<>());
        if (best.size() < 2) {
          best.add(hit.id());
        }
      }
      Map<Object, List<String>> actual = new LinkedHashMap<>();
      groups.forEach(group -> actual.put(group.key(), group.hits().stream().map(Hit::id).toList()));
      assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()));
      assertEquals(expected, actual);

      // By ids and a limit (not exact): the same docs, twelve points rank alike.
      List<HitGroup> byIds = client.recommendGroups(name, positive, List.of(), "doc", 2, 2);
      assertEquals(
          groups.stream().map(HitGroup::key).toList(), byIds.stream().map(HitGroup::key).toList());

      StatusRuntimeException offset =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.recommendGroups(
                  name, ids(positive), List.of(), RecommendStrategy.RECOMMEND_STRATEGY_UNSPECIFIED,
                  "doc", 2, null, QueryParams.newBuilder().setLimit(2).setOffset(1).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, offset.getStatus().getCode());
      StatusRuntimeException ungrouped =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.recommendGroups(
                  RecommendRequest.newBuilder().setCollection(name).addAllPositive(ids(positive)).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, ungrouped.getStatus().getCode());
    } finally {
      client.deleteCollection(name);
    }
  }

  /** A long text of {@code sentences} sentences of about 14 words, on the topics in turn. */
  private static String essay(int sentences) {
    List<String> topics = List.copyOf(TOPICS.keySet());
    List<String> text = new ArrayList<>();
    for (int i = 0; i < sentences; i++) {
      String topic = topics.get(i % topics.size());
      List<String> words = TOPICS.get(topic);
      text.add("Paragraph " + i + " is about " + topic + ": the " + words.get(i % words.size())
          + " and the " + words.get((i + 3) % words.size()) + " were discussed at length.");
    }
    return String.join(" ", text);
  }

  /** A passage's span, [start, end) in its document's text. */
  private static int[] spanOf(Stored passage) {
    List<?> span = (List<?>) passage.payload().get("span");
    assertEquals(2, span.size(), passage.id() + ": " + span);
    return new int[] {((Double) span.get(0)).intValue(), ((Double) span.get(1)).intValue()};
  }

  @Test
  void splitStoresALongDocumentAsPassages() {
    String name = uniqueName("passages");
    client.createCollection(name);
    try {
      String essay = essay(43); // about 600 words
      long points =
          client.upsert(
              name,
              List.of(document("essay", essay, Map.of("lang", "en"))),
              split(64, 8).toBuilder().setStoreText(true).build());
      assertTrue(points > 5, "passages written: " + points);
      assertEquals(points, client.count(name));

      // Passages only: the document's own id holds nothing.
      List<Stored> stored = client.get(name, List.of("essay", "essay#0", "essay#1"), false);
      assertEquals(List.of("essay#0", "essay#1"), stored.stream().map(Stored::id).toList());
      for (int n = 0; n < 2; n++) {
        Map<String, Object> payload = stored.get(n).payload();
        assertEquals("essay", payload.get("doc_id"), payload.toString());
        assertEquals((double) n, payload.get("passage"), payload.toString());
        assertEquals((double) points, payload.get("passages"), payload.toString());
        assertEquals("en", payload.get("lang"), payload.toString());
        int[] span = spanOf(stored.get(n));
        assertEquals(essay.substring(span[0], span[1]), payload.get("text"), "store_text: the passage's text");
      }
      int[] first = spanOf(stored.get(0));
      int[] second = spanOf(stored.get(1));
      assertEquals(0, first[0]);
      assertTrue(first[0] < second[0] && second[0] < first[1], "overlapping spans: "
          + List.of(first[0], first[1]) + ", " + List.of(second[0], second[1]));
      assertTrue(first[1] < second[1], "the second passage goes further");
      Stored last = client.get(name, List.of("essay#" + (points - 1), "essay#" + points), false).get(0);
      assertEquals("essay#" + (points - 1), last.id());
      assertEquals(essay.length(), spanOf(last)[1], "the last passage ends the text");

      // Grouped by doc_id: one group for the document, of its passages.
      List<HitGroup> groups =
          client.searchGroups(name, "the striker scored a penalty goal", "doc_id", 3, null, limit(5));
      assertEquals(List.of("essay"), groups.stream().map(HitGroup::key).toList());
      assertEquals(3, groups.get(0).hits().size(), groups.toString());
      groups.get(0).hits().forEach(hit -> {
        assertTrue(hit.id().startsWith("essay#"), hit.id());
        assertEquals("essay", hit.payload().get("doc_id"), hit.id());
      });

      // Ingest acknowledges documents; writing the essay again, shorter, replaces its passages.
      String shorter = essay(10);
      List<IngestAck> acks = new ArrayList<>();
      long acknowledged =
          client.ingest(
              name,
              List.of(document("essay", shorter), document("note", "A short note about the moon.")),
              split(64, 8),
              1,
              2,
              acks::add);
      assertEquals(2, acknowledged);
      assertEquals(List.of(List.of("essay"), List.of("note")), acks.stream().map(IngestAck::ids).toList());
      Map<String, Object> rewritten = client.get(name, List.of("essay#0"), false).get(0).payload();
      long now = ((Double) rewritten.get("passages")).longValue();
      assertTrue(now > 1 && now < points, "passages of the shorter text: " + now + " (before: " + points + ")");
      assertEquals(now, client.count(name, must(match("doc_id", "essay"))));
      assertEquals(now + 1, client.count(name), "the essay's passages and the note's one");
      assertTrue(client.get(name, List.of("essay#" + (points - 1)), false).isEmpty(), "stale passage deleted");
      Stored note = client.get(name, List.of("note#0"), false).get(0);
      assertEquals(1.0, note.payload().get("passages"));
      assertEquals(List.of(0.0, 28.0), note.payload().get("span"));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void splitRejectsNegativeCounts() {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> split(-1, 0));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertEquals(64, split(64, 8).getSplit().getMaxTokens());
    assertEquals(8, split(64, 8).getSplit().getOverlapTokens());
    assertTrue(Vectors.split().hasSplit());
    assertFalse(Vectors.split().getSplit().hasMaxTokens());
  }

  /** A client of a port where no server listens: a call that went out would be UNAVAILABLE. */
  private static EmbedserveClient nobody() throws Exception {
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    return EmbedserveClient.builder("127.0.0.1:" + port).timeout(Duration.ofSeconds(5)).build();
  }

  private static void assertNegativeCount(String what, Runnable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run, what);
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.getMessage());
    assertEquals(what + " must be a count of at least 0, got -1", e.getStatus().getDescription());
  }

  @Test
  void negativeCountsAreRefusedBeforeSending() throws Exception {
    // A uint32 field would carry -1 as 4294967295.
    QueryParams negativeOffset = QueryParams.newBuilder().setLimit(3).setOffset(-1).build();
    try (EmbedserveClient nobody = nobody()) {
      assertNegativeCount("limit", () -> limit(-1));
      assertNegativeCount("limit", () -> nobody.search("c", "q", -1));
      assertNegativeCount("offset", () -> nobody.search("c", "q", null, negativeOffset));
      assertNegativeCount(
          "offset",
          () -> nobody.search(SearchRequest.newBuilder().setText("q").setParams(negativeOffset).build()));
      assertNegativeCount(
          "recency candidates",
          () -> nobody.search("c", "q", null, null, recency("t", 24).toBuilder().setCandidates(-1).build()));
      assertNegativeCount(
          "search 1: offset",
          () ->
              nobody.searchBatch(
                  SearchBatchRequest.newBuilder()
                      .setCollection("c")
                      .addSearches(SearchRequest.newBuilder().setText("a"))
                      .addSearches(SearchRequest.newBuilder().setText("b").setParams(negativeOffset))
                      .build()));
      assertNegativeCount("limit", () -> nobody.recommend("c", List.of("a"), List.of(), -1));
      assertNegativeCount(
          "offset",
          () -> nobody.recommend(
              RecommendRequest.newBuilder().addAllPositive(ids("a")).setParams(negativeOffset).build()));
      assertNegativeCount("groupSize", () -> nobody.searchGroups("c", "q", "doc", -1, null, limit(2)));
      assertNegativeCount(
          "group_by size",
          () -> nobody.searchGroups(
              SearchRequest.newBuilder().setText("q").setGroupBy(GroupBy.newBuilder().setKey("doc").setSize(-1)).build()));
      assertNegativeCount("groupSize", () -> nobody.recommendGroups("c", List.of("a"), List.of(), "doc", -1, 2));
      assertNegativeCount("limit", () -> nobody.recommendGroups("c", List.of("a"), List.of(), "doc", 2, -1));
      assertNegativeCount("limit", () -> nobody.scroll("c", null, -1));
      assertNegativeCount("limit", () -> nobody.facet("c", "topic", null, -1));
      assertNegativeCount("topN", () -> nobody.rerank("q", List.of("a", "b"), -1, false, false));
      assertNegativeCount("split maxTokens", () -> split(-1, 0));

      // Batch sizes and in-flight bounds, which the server never sees, are the caller's own.
      IllegalArgumentException batch =
          assertThrows(
              IllegalArgumentException.class,
              () -> nobody.ingest("c", CORPUS.subList(0, 1), WriteOptions.getDefaultInstance(), 0, 1, ack -> {}));
      assertEquals("batchSize must be at least 1, got 0", batch.getMessage());
      assertThrows(
          IllegalArgumentException.class,
          () -> nobody.ingest("c", CORPUS.subList(0, 1), WriteOptions.getDefaultInstance(), 1, -1, ack -> {}));
      assertThrows(
          IllegalArgumentException.class,
          () -> nobody.embedStream(List.of(List.of("x")), EmbedOptions.getDefaultInstance(), 0, r -> {}));
      assertThrows(
          IllegalArgumentException.class,
          () -> nobody.embedAsync(List.of("x"), EmbedOptions.getDefaultInstance(), 0, 1));
      // What passes the checks goes out.
      assertRefused(Status.Code.UNAVAILABLE, () -> nobody.search("c", "q", 0));
    }
  }

  @Test
  void groupedRequestsAreRefusedByTheUngroupedCalls() throws Exception {
    GroupBy byDoc = GroupBy.newBuilder().setKey("doc").setSize(2).build();
    try (EmbedserveClient nobody = nobody()) {
      StatusRuntimeException search =
          assertThrows(
              StatusRuntimeException.class,
              () -> nobody.search(SearchRequest.newBuilder().setCollection("c").setText("q").setGroupBy(byDoc).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, search.getStatus().getCode());
      assertTrue(search.getStatus().getDescription().endsWith("use searchGroups"), search.getMessage());
      StatusRuntimeException recommend =
          assertThrows(
              StatusRuntimeException.class,
              () -> nobody.recommend(
                  RecommendRequest.newBuilder().setCollection("c").addAllPositive(ids("a")).setGroupBy(byDoc).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, recommend.getStatus().getCode());
      assertTrue(recommend.getStatus().getDescription().endsWith("use recommendGroups"), recommend.getMessage());
      StatusRuntimeException batch =
          assertThrows(
              StatusRuntimeException.class,
              () ->
                  nobody.searchBatch(
                      SearchBatchRequest.newBuilder()
                          .setCollection("c")
                          .addSearches(SearchRequest.newBuilder().setText("a"))
                          .addSearches(SearchRequest.newBuilder().setText("b").setGroupBy(byDoc))
                          .build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, batch.getStatus().getCode());
      assertTrue(batch.getStatus().getDescription().startsWith("search 1: "), batch.getMessage());
      assertTrue(batch.getStatus().getDescription().contains("vectorStub().searchBatch"), batch.getMessage());
    }
  }

  @Test
  void upsertVectorsAndStoredText() {
    String name = uniqueName("upsert");
    client.createCollection(name, CollectionConfig.newBuilder().setDimensions(DIMS).build());
    try {
      List<float[]> vectors =
          client.embed(
              List.of("red apples", "green pears"),
              EmbedOptions.newBuilder().setTask(Task.TASK_DOCUMENT).build());
      long written =
          client.upsert(
              name,
              List.of(
                  document("apples", vectors.get(0), Map.of("color", "red", "tags", List.of("fruit"))),
                  document("pears", "green pears")),
              WriteOptions.newBuilder().setStoreText(true).build());
      assertEquals(2, written);
      List<Stored> stored = client.get(name, List.of("pears", "apples"), false);
      assertEquals("green pears", stored.get(0).payload().get("text"));
      assertEquals(List.of("fruit"), stored.get(1).payload().get("tags"));
      assertNull(stored.get(1).vector());
      List<Hit> hits =
          client.search(
              name, vectors.get(1), null, QueryParams.newBuilder().setLimit(1).setWithPayload(false).build());
      assertEquals("pears", hits.get(0).id());
      assertTrue(hits.get(0).payload().isEmpty());
      assertEquals(0, client.ingest(name, List.of()));
    } finally {
      client.deleteCollection(name);
    }
  }

  /**
   * 2**53+1 written as payload_json (as the Python client sends it; {@link Vectors#struct}
   * refuses it) through {@link EmbedserveClient#upsert}, read back exactly with exact payloads
   * and changed without.
   */
  @Test
  void exactPayloadsReadIntegersPastTwoToThe53Exactly() {
    String name = uniqueName("exact");
    client.createCollection(name, CollectionConfig.newBuilder().setDimensions(DIMS).build());
    try {
      float[] vector = new float[DIMS];
      vector[0] = 1;
      String big =
          "{\"n\":9007199254740993,\"ids\":[9223372036854775807,-9007199254740993],"
              + "\"f\":0.5,\"whole\":10.0,\"s\":\"x\"}";
      client.upsert(
          name,
          List.of(
              document("big", vector, null).toBuilder().setPayloadJson(big).build(),
              document("small", vector, null).toBuilder().setPayloadJson("{\"n\":3}").build()));
      Map<String, Object> want =
          Map.of(
              "n", 9007199254740993L,
              "ids", List.of(Long.MAX_VALUE, -9007199254740993L),
              "f", 0.5,
              "whole", 10L,
              "s", "x");

      List<Stored> exact =
          client.get(
              GetRequest.newBuilder()
                  .setCollection(name)
                  .addIds("big")
                  .setExactPayloads(true)
                  .build());
      assertEquals(1, exact.size());
      assertEquals(want, exact.get(0).payload());
      // Without exact payloads, the Struct's double.
      assertEquals(
          9007199254740992.0, client.get(name, List.of("big"), false).get(0).payload().get("n"));

      ScrollRequest request =
          ScrollRequest.newBuilder().setCollection(name).setLimit(1).setExactPayloads(true).build();
      ScrollPage page = client.scroll(request);
      assertEquals(1, page.documents().size());
      Map<String, Map<String, Object>> byId = new LinkedHashMap<>();
      client.scrollAll(request).forEach(doc -> byId.put(doc.id(), doc.payload()));
      assertEquals(Map.of("big", want, "small", Map.of("n", 3L)), byId);
      assertEquals(byId.get(page.documents().get(0).id()), page.documents().get(0).payload());
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void datetimeRangeFiltersAndOrders() {
    String name = uniqueName("datetime");
    client.createCollection(
        name,
        CollectionConfig.newBuilder()
            .setDimensions(DIMS)
            .putPayloadIndexes("published", PayloadIndexKind.PAYLOAD_INDEX_KIND_DATETIME)
            .build());
    try {
      // In time order: nov (Nov 2, 08:00Z), midnight (Dec 1, 00:00Z), morning (Dec 1, 08:30Z
      // written with +01:00), evening (Dec 3, 18:45Z); undated has none.
      Map<String, String> published =
          Map.of(
              "nov", "2026-11-02T08:00:00Z",
              "morning", "2026-12-01T09:30:00+01:00",
              "midnight", "2026-12-01",
              "evening", "2026-12-03T18:45:00Z");
      List<String> ids = List.of("nov", "morning", "midnight", "evening", "undated");
      List<Document> docs = new ArrayList<>();
      for (int i = 0; i < ids.size(); i++) {
        float[] vector = new float[DIMS];
        vector[i] = 1;
        String id = ids.get(i);
        docs.add(document(id, vector, published.containsKey(id) ? Map.of("published", published.get(id)) : null));
      }
      assertEquals(5, client.upsert(name, docs));

      // [Dec 1 00:00Z, ...): midnight (the bound itself), morning and evening.
      assertEquals(3, client.count(name, must(datetimeRange("published", "2026-12-01T00:00:00Z", null))));
      // [..., Dec 1 08:30Z): nov and midnight; morning is 08:30Z itself, left out.
      assertEquals(2, client.count(name, must(datetimeRange("published", null, "2026-12-01T08:30:00Z"))));
      // [Dec 1, Dec 3): midnight and morning.
      assertEquals(2, client.count(name, must(datetimeRange("published", "2026-12-01", "2026-12-03"))));

      List<String> newestFirst = new ArrayList<>();
      String cursor = null;
      do {
        ScrollPage page = client.scroll(name, cursor, 2, "published", true);
        page.documents().forEach(doc -> newestFirst.add(doc.id()));
        cursor = page.nextCursor();
        assertTrue(newestFirst.size() <= 5, "more documents than stored: " + newestFirst);
      } while (cursor != null);
      assertEquals(List.of("evening", "morning", "midnight", "nov"), newestFirst);

      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.count(name, must(datetimeRange("published", "yesterday", null))));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("is no date and time"), e.toString());
      assertThrows(IllegalArgumentException.class, () -> datetimeRange("published", null, null));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void geoAndIsEmptyFilters() {
    String name = uniqueName("geo");
    client.createCollection(
        name,
        CollectionConfig.newBuilder()
            .setDimensions(DIMS)
            .putPayloadIndexes("at", PayloadIndexKind.PAYLOAD_INDEX_KIND_GEO)
            .build());
    try {
      Map<String, double[]> places =
          Map.of(
              "mitte", new double[] {52.5200, 13.4050},
              "alex", new double[] {52.5219, 13.4132},
              "potsdam", new double[] {52.3906, 13.0645},
              "hamburg", new double[] {53.5511, 9.9937});
      List<String> ids = List.of("mitte", "alex", "potsdam", "hamburg", "nowhere");
      List<Document> docs = new ArrayList<>();
      for (int i = 0; i < ids.size(); i++) {
        float[] vector = new float[DIMS];
        vector[i] = 1;
        double[] at = places.get(ids.get(i));
        docs.add(
            document(
                ids.get(i), vector, at == null ? null : Map.of("at", Map.of("lat", at[0], "lon", at[1]))));
      }
      assertEquals(5, client.upsert(name, docs));

      // Within 2 km of Berlin Mitte: mitte itself and alex (about 600 m off).
      assertEquals(2, client.count(name, must(geoRadius("at", 52.52, 13.405, 2000))));
      // Lat 52 to 53, lon 12.5 to 14: mitte, alex and potsdam, not hamburg.
      assertEquals(3, client.count(name, must(geoBox("at", 53.0, 12.5, 52.0, 14.0))));
      assertEquals(1, client.count(name, must(isEmpty("at"))));

      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.count(name, must(geoRadius("at", 95, 13.405, 2000))));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(
          e.getStatus().getDescription().contains("lat must be a number from -90 to 90"), e.toString());
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void anyObjectValuesCountAndAtLeastFilters() {
    String name = uniqueName("any_object");
    client.createCollection(name, CollectionConfig.newBuilder().setDimensions(DIMS).build());
    try {
      List<Document> docs =
          List.of(
              document(
                  "soup",
                  "A quick vegan soup",
                  Map.of(
                      "tags", List.of("vegan", "quick", "cheap"),
                      "reviews",
                      List.of(Map.of("by", "ana", "stars", 5), Map.of("by", "bo", "stars", 2)))),
              document(
                  "stew",
                  "A hearty stew",
                  Map.of(
                      "tags", List.of("hearty"),
                      "reviews",
                      List.of(Map.of("by", "ana", "stars", 2), Map.of("by", "bo", "stars", 5)))),
              document(
                  "salad",
                  "A quick vegan salad",
                  Map.of("tags", List.of("vegan", "quick"), "reviews", List.of())),
              document(
                  "bread",
                  "A loaf of bread",
                  Map.of("tags", List.of(), "reviews", List.of(Map.of("by", "ana", "stars", 4)))));
      assertEquals(4, client.upsert(name, docs));
      Function<Filter, Set<String>> matching =
          filter -> {
            List<Hit> hits = client.search(name, "food", filter, limit(10));
            assertEquals(hits.size(), client.count(name, filter), "count and search agree");
            return Set.copyOf(hits.stream().map(Hit::id).toList());
          };
      Function<String, Condition> atLeast4 =
          key ->
              Condition.newBuilder()
                  .setRange(RangeCondition.newBuilder().setKey(key).setGte(4))
                  .build();

      // stew has a review by ana and a five-star one, but not in one object.
      assertEquals(
          Set.of("soup", "bread"),
          matching.apply(
              must(anyObject("reviews", must(match("by", "ana"), atLeast4.apply("stars"))))));
      assertEquals(
          Set.of("soup", "stew", "bread"),
          matching.apply(must(match("reviews[].by", "ana"), atLeast4.apply("reviews[].stars"))));
      assertEquals(Set.of("stew", "bread"), matching.apply(must(valuesCount("tags", null, 1))));
      assertEquals(Set.of("soup", "salad"), matching.apply(must(valuesCount("tags", 2, null))));
      assertEquals(
          Set.of("soup", "salad"),
          matching.apply(
              atLeast(
                  2,
                  match("tags", "vegan"),
                  match("tags", "quick"),
                  valuesCount("reviews", 2, null))));
      Filter veganAndOneOf =
          must(match("tags", "vegan")).toBuilder()
              .setMinShould(atLeast(1, match("tags", "cheap"), isEmpty("reviews")).getMinShould())
              .build();
      assertEquals(Set.of("soup", "salad"), matching.apply(veganAndOneOf));

      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.count(name, must(anyObject("reviews", must(hasId("soup"))))));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("has_id"), e.toString());
      assertThrows(IllegalArgumentException.class, () -> valuesCount("tags", null, null));
      assertThrows(IllegalArgumentException.class, () -> valuesCount("tags", -1, 1));
      assertThrows(
          IllegalArgumentException.class,
          () -> atLeast(3, match("tags", "vegan"), isEmpty("reviews")));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void matchExceptMatchTextAnyAndGeoPolygonFilters() {
    String name = uniqueName("except_polygon");
    client.createCollection(
        name,
        CollectionConfig.newBuilder()
            .setDimensions(DIMS)
            .putPayloadIndexes("name", PayloadIndexKind.PAYLOAD_INDEX_KIND_TEXT)
            .putPayloadIndexes("at", PayloadIndexKind.PAYLOAD_INDEX_KIND_GEO)
            .build());
    try {
      List<Document> docs =
          List.of(
              cafe("mitte", "Espresso Bar Mitte", 52.5200, 13.4050, "de", 5),
              cafe("alex", "Tower Coffee", 52.5219, 13.4132, "en", 4),
              cafe("potsdam", "Palace Roastery", 52.3906, 13.0645, "de", 3),
              cafe("hamburg", "Harbour Espresso", 53.5511, 9.9937, "de", 5));
      assertEquals(4, client.upsert(name, docs));
      Function<Filter, Set<String>> matching =
          filter -> {
            List<Hit> hits = client.search(name, "coffee", filter, limit(10));
            assertEquals(hits.size(), client.count(name, filter), "count and search agree");
            return Set.copyOf(hits.stream().map(Hit::id).toList());
          };

      // Around Berlin and Potsdam, an open ring (closed by the server).
      List<GeoPoint> berlin =
          List.of(place(52.7, 13.0), place(52.7, 13.8), place(52.3, 13.8), place(52.3, 13.0));
      // A hole around Mitte, leaving alex (about 600 m east) out of it.
      List<GeoPoint> mitte =
          List.of(place(52.53, 13.39), place(52.53, 13.41), place(52.51, 13.41), place(52.51, 13.39));
      assertEquals(
          Set.of("mitte", "alex", "potsdam"),
          matching.apply(must(geoPolygon("at", berlin, List.of()))));
      assertEquals(
          Set.of("alex", "potsdam"), matching.apply(must(geoPolygon("at", berlin, List.of(mitte)))));
      assertEquals(
          Set.of("mitte", "alex", "hamburg"),
          matching.apply(must(matchTextAny("name", "coffee ESPRESSO"))));
      assertEquals(
          Set.of("mitte", "potsdam"),
          matching.apply(must(geoPolygon("at", berlin, null), matchExcept("lang", "en"))));
      assertEquals(Set.of("alex", "potsdam"), matching.apply(must(matchExcept("stars", 5L))));
      // A key with no value does not match.
      assertEquals(Set.of(), matching.apply(must(matchExcept("missing", 5L))));

      List<GeoPoint> line = List.of(place(52.7, 13.0), place(52.3, 13.8), place(52.7, 13.0));
      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.count(name, must(geoPolygon("at", line, List.of()))));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(
          e.getStatus().getDescription().contains("needs 3 or more different corners"),
          e.toString());
    } finally {
      client.deleteCollection(name);
    }
  }

  /** A cafe: its name in the text and payload, where it is, its lang and its stars. */
  private static Document cafe(
      String id, String cafeName, double lat, double lon, String lang, int stars) {
    return document(
        id,
        cafeName + ", a cafe",
        Map.of(
            "name", cafeName,
            "at", Map.of("lat", lat, "lon", lon),
            "lang", lang,
            "stars", stars));
  }

  @Test
  void recencyRanksFresherDocumentsFirst() {
    String name = uniqueName("recency");
    client.createCollection(name, CollectionConfig.newBuilder().setDimensions(DIMS).build());
    try {
      // old is the query itself (similarity 1), dated eleven months before now; fresh is 0.8
      // like it, a day old.
      float[] query = new float[DIMS];
      float[] old = new float[DIMS];
      float[] fresh = new float[DIMS];
      query[0] = 1;
      old[0] = 1;
      fresh[0] = 0.8f;
      fresh[1] = 0.6f;
      assertEquals(
          2,
          client.upsert(
              name,
              List.of(
                  document("old", old, Map.of("published", "2026-01-01T00:00:00Z")),
                  document("fresh", fresh, Map.of("published", "2026-12-04T12:00:00Z")))));

      List<Hit> plain = client.search(name, query, null, null);
      assertEquals(List.of("old", "fresh"), plain.stream().map(Hit::id).toList());
      // A week's half-life, half the score at stake: old (48 half-lives back) keeps half of its
      // score, fresh 0.8 * (0.5 + 0.5 * 0.5^(24/168)) = 0.76.
      Recency weekly =
          recency("published", 168).toBuilder().setWeight(0.5).setNow("2026-12-05T12:00:00Z").build();
      List<Hit> weighed = client.search(name, query, null, null, weekly);
      assertEquals(List.of("fresh", "old"), weighed.stream().map(Hit::id).toList());
      assertEquals(plain.get(0).score() / 2, weighed.get(1).score(), 1e-4);
      // Recommendations take it too.
      List<Hit> recommended =
          client.recommend(
              RecommendRequest.newBuilder()
                  .setCollection(name)
                  .addPositive(vectorExample(query))
                  .setRecency(weekly)
                  .build());
      assertEquals("fresh", recommended.get(0).id());

      assertRefused(
          Status.Code.INVALID_ARGUMENT,
          () -> client.search(name, query, null, QueryParams.newBuilder().setDiversity(0.5f).build(), weekly));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void proximityRanksNearerDocumentsFirst() {
    String name = uniqueName("proximity");
    client.createCollection(name, CollectionConfig.newBuilder().setDimensions(DIMS).build());
    try {
      // mitte, alex and hamburg are all 0.8 like the query, at different places; nowhere, 0.6
      // like it, has no place.
      float[] query = new float[DIMS];
      query[0] = 1;
      Map<String, double[]> places =
          Map.of(
              "mitte", new double[] {52.5200, 13.4050},
              "alex", new double[] {52.5219, 13.4132},
              "hamburg", new double[] {53.5511, 9.9937});
      List<String> ids = List.of("mitte", "alex", "hamburg", "nowhere");
      List<Document> docs = new ArrayList<>();
      for (int i = 0; i < ids.size(); i++) {
        double[] at = places.get(ids.get(i));
        float[] vector = new float[DIMS];
        vector[0] = at == null ? 0.6f : 0.8f;
        vector[i + 1] = at == null ? 0.8f : 0.6f;
        docs.add(
            document(
                ids.get(i), vector, at == null ? null : Map.of("at", Map.of("lat", at[0], "lon", at[1]))));
      }
      assertEquals(4, client.upsert(name, docs));

      List<Hit> plain = client.search(name, query, null, null);
      assertEquals(4, plain.size());
      assertEquals("nowhere", plain.get(3).id());
      // A kilometre's half-distance from Mitte, half the score at stake: mitte keeps all of 0.8,
      // alex (about 600 m off) about 0.66, hamburg (about 255 km off) about 0.4, nowhere half of
      // its 0.6.
      Proximity near = proximity("at", 52.52, 13.405, 1000).toBuilder().setWeight(0.5).build();
      List<Hit> weighed = client.search(name, query, null, null, null, near);
      assertEquals(
          List.of("mitte", "alex", "hamburg", "nowhere"), weighed.stream().map(Hit::id).toList());
      assertEquals(plain.get(3).score() / 2, weighed.get(3).score(), 1e-4);
      // Recommendations take it too.
      List<Hit> recommended =
          client.recommend(
              RecommendRequest.newBuilder()
                  .setCollection(name)
                  .addPositive(vectorExample(query))
                  .setProximity(near)
                  .build());
      assertEquals(
          List.of("mitte", "alex", "hamburg", "nowhere"),
          recommended.stream().map(Hit::id).toList());

      assertRefused(
          Status.Code.INVALID_ARGUMENT,
          () ->
              client.search(
                  name, query, null, QueryParams.newBuilder().setDiversity(0.5f).build(), null, near));
    } finally {
      client.deleteCollection(name);
    }
  }

  /** Aliases as "alias=collection", to compare them at once. */
  private static List<String> aliasPairs(List<Alias> aliases) {
    return aliases.stream().map(a -> a.getAlias() + "=" + a.getCollection()).toList();
  }

  private static void assertRefused(Status.Code code, Runnable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run);
    assertEquals(code, e.getStatus().getCode(), e.getMessage());
  }

  @Test
  void aliasesNameCollections() {
    String first = uniqueName("alias_first");
    String second = uniqueName("alias_second");
    String alias = uniqueName("alias");
    client.createCollection(first);
    try {
      client.createCollection(second);
      try {
        assertEquals(3, client.upsert(first, CORPUS.subList(0, 3)));
        client.updateAliases(Map.of(alias, first), List.of());
        assertEquals(3, client.count(alias));
        assertEquals("cooking", topicOf(client.search(alias, "a recipe with garlic", 1).get(0).payload()));
        CollectionInfo info = client.getCollection(alias);
        assertEquals(first, info.getName());
        assertEquals(List.of(alias), info.getAliasesList());

        // Moved: the alias's readers reach the other collection, empty.
        client.updateAliases(Map.of(alias, second), List.of());
        assertEquals(0, client.count(alias));
        List<String> want = List.of(alias + "=" + second);
        assertEquals(want, aliasPairs(client.listAliases(second)));
        assertEquals(want, aliasPairs(client.listAliases(alias)));
        assertEquals(List.of(), client.listAliases(first));
        // The server may be shared: other tests' aliases may be listed too.
        List<String> all = aliasPairs(client.listAliases());
        assertTrue(all.contains(want.get(0)), all.toString());
        assertEquals(all.stream().sorted().toList(), all);

        // Refused, and nothing of a refused change is made.
        assertRefused(Status.Code.FAILED_PRECONDITION, () -> client.deleteCollection(alias));
        String missing = uniqueName("missing");
        assertRefused(
            Status.Code.NOT_FOUND,
            () -> client.updateAliases(Map.of(alias, first, missing + "_alias", missing), List.of()));
        assertRefused(
            Status.Code.ALREADY_EXISTS, () -> client.updateAliases(Map.of(first, second), List.of()));
        assertEquals(want, aliasPairs(client.listAliases(second)));

        client.updateAliases(Map.of(), List.of(alias));
        assertEquals(List.of(), client.listAliases(second));
        assertRefused(Status.Code.NOT_FOUND, () -> client.getCollection(alias));
        assertRefused(Status.Code.NOT_FOUND, () -> client.updateAliases(Map.of(), List.of(alias)));
      } finally {
        client.deleteCollection(second);
      }
    } finally {
      client.deleteCollection(first);
    }
  }

  /** Facet counts as "value=count", the values held equally often sorted, to compare at once. */
  private static List<String> facetCounts(List<FacetValue> values) {
    List<String> counts = new ArrayList<>();
    for (FacetValue v : values) {
      counts.add(v.getText() + "=" + v.getCount());
    }
    if (counts.size() > 1) {
      counts.subList(1, counts.size()).sort(null); // the topics held once tie
    }
    return counts;
  }

  @Test
  void updateCollectionIndexesTheStoredDocuments() {
    String name = uniqueName("update");
    client.createCollection(name);
    try {
      // PER_TOPIC documents of each topic, in TOPICS order: cooking, finance, football, space.
      List<Document> sample =
          List.of(CORPUS.get(0), CORPUS.get(1), CORPUS.get(2), CORPUS.get(PER_TOPIC), CORPUS.get(2 * PER_TOPIC));
      assertEquals(sample.size(), client.upsert(name, sample));

      // The collection records the model that created it.
      GetModelInfoResponse model = client.modelInfo();
      CollectionInfo info = client.getCollection(name);
      assertFalse(info.getModelFingerprint().isEmpty());
      assertEquals(model.getFingerprint(), info.getModelFingerprint());
      assertEquals(model.getModelId(), info.getModelId());

      // Facets need an index: one added now indexes the documents already stored.
      assertRefused(Status.Code.INVALID_ARGUMENT, () -> client.facet(name, "topic", null, 10));
      info = client.addPayloadIndex(name, "topic", PayloadIndexKind.PAYLOAD_INDEX_KIND_KEYWORD);
      assertEquals(name, info.getName());
      assertEquals(
          Map.of("topic", PayloadIndexKind.PAYLOAD_INDEX_KIND_KEYWORD), info.getConfig().getPayloadIndexesMap());
      assertEquals(
          List.of("cooking=3", "finance=1", "football=1"), facetCounts(client.facet(name, "topic", null, 10)));
      assertEquals(List.of("cooking=3"), facetCounts(client.facet(name, "topic", null, 1)));
      // Without a limit: the server's default, as Go's Facet(..., 0) and Python's facet().
      assertEquals(
          List.of("cooking=3", "finance=1", "football=1"), facetCounts(client.facet(name, "topic", null)));

      info = client.updateCollection(UpdateCollectionRequest.newBuilder().setName(name).setHnswEf(48).build());
      assertEquals(48, info.getConfig().getHnswEf());
      assertEquals(sample.size(), info.getPointsCount());
      assertEquals(Set.of("topic"), info.getConfig().getPayloadIndexesMap().keySet());

      // Refused, and nothing of a refused change is made.
      assertRefused(Status.Code.INVALID_ARGUMENT, () -> client.dropPayloadIndex(name, "nope"));
      assertRefused(
          Status.Code.INVALID_ARGUMENT,
          () -> client.updateCollection(UpdateCollectionRequest.newBuilder().setName(name).build()));
      assertRefused(
          Status.Code.INVALID_ARGUMENT,
          () ->
              client.updateCollection(
                  UpdateCollectionRequest.newBuilder()
                      .setName(name)
                      .putAddPayloadIndexes("n", PayloadIndexKind.PAYLOAD_INDEX_KIND_INTEGER)
                      .addDropPayloadIndexes("n")
                      .build()));
      String missing = uniqueName("missing");
      assertRefused(
          Status.Code.NOT_FOUND,
          () -> client.addPayloadIndex(missing, "topic", PayloadIndexKind.PAYLOAD_INDEX_KIND_KEYWORD));
      info = client.getCollection(name);
      assertEquals(Set.of("topic"), info.getConfig().getPayloadIndexesMap().keySet());
      assertEquals(48, info.getConfig().getHnswEf());

      // Dropped: facets are refused again.
      info = client.dropPayloadIndex(name, "topic");
      assertEquals(Map.of(), info.getConfig().getPayloadIndexesMap());
      assertRefused(Status.Code.INVALID_ARGUMENT, () -> client.facet(name, "topic", null, 10));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void ingestToAMissingCollectionIsNotFound() {
    List<IngestAck> acks = new ArrayList<>();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                client.ingest(
                    uniqueName("missing"),
                    CORPUS.subList(0, 10),
                    WriteOptions.getDefaultInstance(),
                    3,
                    2,
                    acks::add));
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    assertTrue(acks.isEmpty());
  }

  @Test
  void ingestWithoutAServerIsUnavailable() throws Exception {
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    try (EmbedserveClient nobody =
        EmbedserveClient.builder("127.0.0.1:" + port).timeout(Duration.ofSeconds(5)).build()) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> nobody.ingest("anything", CORPUS.subList(0, 5)));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }
  }

  @Test
  void ackHandlerExceptionCancelsTheIngestion() {
    String name = uniqueName("cancel");
    client.createCollection(name);
    try {
      IllegalStateException stop = new IllegalStateException("enough");
      int[] seen = {0};
      IllegalStateException thrown =
          assertThrows(
              IllegalStateException.class,
              () ->
                  client.ingest(
                      name,
                      CORPUS.subList(0, 20),
                      WriteOptions.getDefaultInstance(),
                      2,
                      2,
                      ack -> {
                        if (++seen[0] == 2) {
                          throw stop;
                        }
                      }));
      assertSame(stop, thrown);
      assertEquals(2, seen[0]);
      // What was acknowledged is stored; the client carries on.
      assertEquals(2, client.get(name, List.of("cooking-0", "cooking-3"), false).size());
      assertEquals(20, client.ingest(name, CORPUS.subList(0, 20)));
      assertEquals(20, client.count(name));
    } finally {
      client.deleteCollection(name);
    }
  }

  /** Each document's texts as passages "doc-part" with payload {"doc", "part"}. */
  private static List<Document> passageDocuments(Map<String, List<String>> passages) {
    List<Document> docs = new ArrayList<>();
    passages.forEach(
        (doc, texts) -> {
          for (int part = 0; part < texts.size(); part++) {
            docs.add(document(doc + "-" + part, texts.get(part), Map.of("doc", doc, "part", part)));
          }
        });
    return docs;
  }
}
