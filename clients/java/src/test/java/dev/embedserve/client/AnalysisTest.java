package dev.embedserve.client;

import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.labelsById;
import static dev.embedserve.client.Vectors.match;
import static dev.embedserve.client.Vectors.must;
import static dev.embedserve.client.Vectors.textList;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.client.EmbedserveClient.ScrollPage;
import dev.embedserve.client.EmbedserveClient.Stored;
import dev.embedserve.v1.ClusterAlgorithm;
import dev.embedserve.v1.ClusterRequest;
import dev.embedserve.v1.ClusterResponse;
import dev.embedserve.v1.CollectionConfig;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.DuplicateMethod;
import dev.embedserve.v1.DuplicatePair;
import dev.embedserve.v1.FindDuplicatesRequest;
import dev.embedserve.v1.FindDuplicatesResponse;
import dev.embedserve.v1.PayloadIndexKind;
import dev.embedserve.v1.ScrollOrder;
import dev.embedserve.v1.ScrollRequest;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Scroll, Cluster and FindDuplicates against the live server, on 16 short texts: five about each
 * of three topics and a near-copy of one of them.
 */
@ExtendWith(LiveServer.class)
class AnalysisTest {
  private static final int DIMS = 384;
  private static final Map<String, List<String>> TOPICS =
      Map.of(
          "space",
          List.of(
              "The rocket launched the satellite into orbit around the planet.",
              "Astronauts aboard the space station watched the moon rise.",
              "A new telescope photographed a distant spiral galaxy.",
              "The probe landed on Mars after a seven month journey.",
              "Engineers tested the rocket engine before the launch to orbit."),
          "cooking",
          List.of(
              "Simmer the tomato sauce with garlic and fresh basil.",
              "Knead the bread dough and bake it in a hot oven.",
              "Whisk the eggs with sugar before folding in the flour.",
              "Fry the onions in butter until they turn golden.",
              "Season the soup with salt, pepper and a pinch of thyme."),
          "football",
          List.of(
              "The striker scored a late goal to win the match.",
              "The referee showed a red card to the defender.",
              "The goalkeeper saved a penalty in the final minute.",
              "The league champions signed a new midfielder.",
              "Fans filled the stadium for the cup final."));
  // A near-copy of cooking-0 (case and punctuation only): the one pair above the threshold.
  private static final String COPY_OF = "cooking-0";
  private static final String COPY = "cooking-0-copy";

  private static EmbedserveClient client;
  private static String collection;
  private static List<Document> corpus;

  @BeforeAll
  static void storeCorpus() {
    client = EmbedserveClient.builder(LiveServer.target()).build();
    collection = VectorServiceTest.uniqueName("analysis");
    client.createCollection(
        collection,
        CollectionConfig.newBuilder()
            .putPayloadIndexes("topic", PayloadIndexKind.PAYLOAD_INDEX_KIND_KEYWORD)
            .build());
    List<Document> docs = new ArrayList<>();
    TOPICS.forEach(
        (topic, texts) -> {
          for (int n = 0; n < texts.size(); n++) {
            docs.add(document(topic + "-" + n, texts.get(n), Map.of("topic", topic)));
          }
        });
    docs.add(
        document(
            COPY,
            "simmer the tomato sauce with garlic and fresh basil",
            Map.of("topic", "cooking")));
    corpus = List.copyOf(docs);
    long written =
        client.upsert(collection, corpus, WriteOptions.newBuilder().setStoreText(true).build());
    assertEquals(16, written);
  }

  @AfterAll
  static void cleanUp() {
    try {
      client.deleteCollection(collection);
    } finally {
      client.close();
    }
  }

  private static Set<String> allIds() {
    return corpus.stream().map(Document::getId).collect(Collectors.toSet());
  }

  @Test
  void scrollPagesCoverEveryDocumentOnce() {
    List<String> seen = new ArrayList<>();
    List<Integer> sizes = new ArrayList<>();
    String cursor = null;
    do {
      ScrollPage page = client.scroll(collection, cursor, 5);
      sizes.add(page.documents().size());
      page.documents().forEach(doc -> seen.add(doc.id()));
      page.documents().forEach(doc -> assertNull(doc.vector(), doc.id()));
      page.documents().forEach(doc -> assertNotNull(doc.payload().get("topic"), doc.id()));
      cursor = page.nextCursor();
      assertTrue(sizes.size() <= 4, "more pages than 16 documents need: " + sizes);
    } while (cursor != null);
    assertEquals(List.of(5, 5, 5, 1), sizes);
    assertEquals(16, seen.size());
    assertEquals(allIds(), new HashSet<>(seen));
  }

  @Test
  void scrollAllFollowsTheCursorToTheEnd() {
    ScrollRequest request =
        ScrollRequest.newBuilder()
            .setCollection(collection)
            .setLimit(3)
            .setWithVectors(true)
            .setWithPayload(false)
            .build();
    Iterator<Stored> documents = client.scrollAll(request).iterator();
    List<String> seen = new ArrayList<>();
    while (documents.hasNext()) {
      Stored doc = documents.next();
      assertEquals(DIMS, doc.vector().length, doc.id());
      assertTrue(doc.payload().isEmpty(), doc.id() + ": " + doc.payload());
      seen.add(doc.id());
    }
    assertFalse(documents.hasNext());
    assertThrows(NoSuchElementException.class, documents::next);
    assertEquals(16, seen.size());
    assertEquals(allIds(), new HashSet<>(seen));
    // The stream form, with the defaults (payloads, no vectors, pages of 256).
    assertEquals(allIds(), client.scrollAll(collection).map(Stored::id).collect(Collectors.toSet()));
  }

  @Test
  void scrollAllWithAFilterKeepsToIt() {
    ScrollRequest request =
        ScrollRequest.newBuilder()
            .setCollection(collection)
            .setFilter(must(match("topic", "cooking")))
            .setLimit(2)
            .build();
    List<Stored> cooking = client.scrollAll(request).toList();
    assertEquals(6, cooking.size());
    cooking.forEach(doc -> assertEquals("cooking", doc.payload().get("topic"), doc.id()));
    assertEquals(
        Set.of("cooking-0", "cooking-1", "cooking-2", "cooking-3", "cooking-4", COPY),
        cooking.stream().map(Stored::id).collect(Collectors.toSet()));
  }

  @Test
  void scrollOrderedByAnIntegerFieldPagesThroughItsValues() {
    String name = VectorServiceTest.uniqueName("ordered");
    client.createCollection(
        name,
        CollectionConfig.newBuilder()
            .setDimensions(DIMS)
            .putPayloadIndexes("year", PayloadIndexKind.PAYLOAD_INDEX_KIND_INTEGER)
            .build());
    try {
      Map<String, Integer> years =
          Map.of(
              "d0", 2019, "d1", 2021, "d2", 2020, "d3", 2021, "d4", 2018, "d5", 2020, "d6", 2021,
              "d7", 2017);
      List<Document> docs = new ArrayList<>();
      for (int i = 0; i < 9; i++) { // d8 has no year
        String id = "d" + i;
        float[] vector = new float[DIMS];
        vector[i] = 1;
        Map<String, Integer> payload = years.containsKey(id) ? Map.of("year", years.get(id)) : null;
        docs.add(document(id, vector, payload));
      }
      assertEquals(9, client.upsert(name, docs));

      // Largest first, two a page: every dated document once, years never increasing.
      List<String> seen = new ArrayList<>();
      double last = Double.POSITIVE_INFINITY;
      String cursor = null;
      do {
        ScrollPage page = client.scroll(name, cursor, 2, "year", true);
        assertTrue(page.documents().size() <= 2, "page of " + page.documents().size());
        for (Stored doc : page.documents()) {
          double year = ((Number) doc.payload().get("year")).doubleValue();
          assertTrue(year <= last, doc.id() + " (" + year + ") after " + last);
          last = year;
          seen.add(doc.id());
        }
        cursor = page.nextCursor();
        assertTrue(seen.size() <= 9, "more documents than stored: " + seen);
      } while (cursor != null);
      assertEquals(8, seen.size(), seen.toString());
      assertEquals(years.keySet(), new HashSet<>(seen));
      // scrollAll keeps the request's order from page to page.
      ScrollRequest descending =
          ScrollRequest.newBuilder()
              .setCollection(name)
              .setLimit(2)
              .setOrderBy(ScrollOrder.newBuilder().setKey("year").setDescending(true))
              .build();
      assertEquals(seen, client.scrollAll(descending).map(Stored::id).toList());

      // A cursor belongs to the order it was handed out with.
      String ascending = client.scroll(name, null, 2, "year", false).nextCursor();
      assertNotNull(ascending);
      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class, () -> client.scroll(name, ascending, 2, "year", true));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("another order_by"), e.toString());
      assertThrows(IllegalArgumentException.class, () -> client.scroll(name, null, 2, null, true));
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void aPageThatFailsEndsTheStreamWithTheServerStatus() {
    String name = VectorServiceTest.uniqueName("vanishing");
    client.createCollection(name);
    client.upsert(name, corpus.subList(0, 4));
    Iterator<Stored> documents =
        client
            .scrollAll(ScrollRequest.newBuilder().setCollection(name).setLimit(2).build())
            .iterator();
    documents.next();
    documents.next();
    client.deleteCollection(name); // the next page asks for a collection that is gone
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, documents::hasNext);
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
  }

  @Test
  void clusterTextsGroupsThemByTopic() {
    List<String> texts = new ArrayList<>();
    List<String> topicOf = new ArrayList<>();
    TOPICS.forEach(
        (topic, sentences) ->
            sentences.forEach(
                text -> {
                  texts.add(text);
                  topicOf.add(topic);
                }));
    ClusterResponse response =
        client.cluster(ClusterRequest.newBuilder().setTexts(textList(texts)).setK(3).build());
    assertEquals(3, response.getK());
    assertEquals(15, response.getPointsClustered());
    Map<String, Integer> labels = labelsById(response);
    // Ids of texts are their indexes; each topic must be exactly one cluster.
    Map<String, Set<Integer>> labelsOfTopic =
        labels.entrySet().stream()
            .collect(
                Collectors.groupingBy(
                    entry -> topicOf.get(Integer.parseInt(entry.getKey())),
                    Collectors.mapping(Map.Entry::getValue, Collectors.toSet())));
    assertEquals(3, labelsOfTopic.size(), labelsOfTopic.toString());
    labelsOfTopic.forEach((topic, set) -> assertEquals(1, set.size(), topic + ": " + labels));
    assertEquals(
        3,
        labelsOfTopic.values().stream().flatMap(Set::stream).distinct().count(),
        "topics share a cluster: " + labelsOfTopic);
  }

  @Test
  void clusterTextsChoosesKBySilhouette() {
    List<String> texts = TOPICS.values().stream().flatMap(List::stream).toList();
    ClusterResponse response =
        client.cluster(
            ClusterRequest.newBuilder().setTexts(textList(texts)).setKMin(2).setKMax(5).build());
    assertEquals(Set.of(2, 3, 4, 5), response.getSilhouetteByKMap().keySet());
    float best = response.getSilhouetteByKMap().values().stream().max(Float::compare).orElseThrow();
    assertEquals(best, response.getSilhouetteByKMap().get(response.getK()));
    assertEquals(3, response.getK(), "silhouettes " + response.getSilhouetteByKMap());
    assertEquals(3, client.clusterTexts(texts).getK());
  }

  @Test
  void clusterACollectionWithHdbscanAndWriteTheLabels() {
    String name = VectorServiceTest.uniqueName("labels");
    client.createCollection(name);
    try {
      client.upsert(name, corpus);
      ClusterResponse response =
          client.cluster(
              ClusterRequest.newBuilder()
                  .setCollection(name)
                  .setAlgorithm(ClusterAlgorithm.CLUSTER_ALGORITHM_HDBSCAN)
                  .setMinClusterSize(3)
                  .setWriteLabel("group")
                  .build());
      assertEquals(16, response.getPointsClustered());
      assertEquals(16, response.getLabelsWritten());
      Map<String, Integer> labels = labelsById(response);
      assertEquals(labels.get(COPY_OF), labels.get(COPY));
      assertNotEquals(-1, labels.get(COPY_OF), "the planted pair is noise: " + labels);
      // Every stored payload now carries its label, next to what it held before.
      Map<String, Stored> stored =
          client.scrollAll(name).collect(Collectors.toMap(Stored::id, Function.identity()));
      assertEquals(16, stored.size());
      labels.forEach(
          (id, label) -> {
            assertEquals(label.doubleValue(), stored.get(id).payload().get("group"), id);
            assertNotNull(stored.get(id).payload().get("topic"), id);
          });
    } finally {
      client.deleteCollection(name);
    }
  }

  @Test
  void writeLabelOnTextsIsInvalid() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                client.cluster(
                    ClusterRequest.newBuilder()
                        .setTexts(textList(List.of("a", "b", "c")))
                        .setWriteLabel("group")
                        .build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().contains("write_label"), e.getMessage());
  }

  @Test
  void findDuplicatesFindsThePlantedPairOnly() {
    FindDuplicatesResponse response = client.findDuplicates(collection, 0.9f);
    assertEquals(16, response.getPointsScanned());
    assertEquals(1, response.getPairsCount(), response.getPairsList().toString());
    DuplicatePair pair = response.getPairs(0);
    assertEquals(Set.of(COPY_OF, COPY), Set.of(pair.getA(), pair.getB()));
    assertTrue(pair.getScore() >= 0.9f, "score " + pair.getScore());
    assertEquals(1, response.getGroupsCount());
    assertEquals(List.of(COPY_OF, COPY), response.getGroups(0).getIdsList());
    assertEquals(
        "Simmer the tomato sauce with garlic and fresh basil.", response.getTextsMap().get(COPY_OF));
    // Each document's best-neighbour score is counted once in the histogram.
    assertEquals(16, response.getHistogramList().stream().mapToLong(bin -> bin.getCount()).sum());

    // Either method, and without texts: the same single pair.
    for (DuplicateMethod method :
        List.of(
            DuplicateMethod.DUPLICATE_METHOD_EXACT_BLOCKS,
            DuplicateMethod.DUPLICATE_METHOD_STORE_QUERIES)) {
      FindDuplicatesResponse byMethod =
          client.findDuplicates(
              FindDuplicatesRequest.newBuilder()
                  .setCollection(collection)
                  .setThreshold(0.9f)
                  .setMethod(method)
                  .setWithText(false)
                  .build());
      assertEquals(method, byMethod.getMethod());
      assertEquals(1, byMethod.getPairsCount(), method.name());
      DuplicatePair same = byMethod.getPairs(0);
      assertEquals(List.of(pair.getA(), pair.getB()), List.of(same.getA(), same.getB()));
      assertEquals(pair.getScore(), same.getScore(), 1e-5f, method.name());
      assertTrue(byMethod.getTextsMap().isEmpty(), method.name());
    }
  }

  @Test
  void aThresholdAboveOneIsInvalid() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.findDuplicates(collection, 2.0f));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().contains("threshold"), e.getMessage());
  }

  @Test
  void aMissingCollectionIsNotFound() {
    String missing = VectorServiceTest.uniqueName("missing");
    for (Runnable call :
        List.<Runnable>of(
            () -> client.scroll(missing, null, 5),
            () -> client.cluster(missing),
            () -> client.findDuplicates(missing, 0.9f))) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run);
      assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    }
  }
}
