package dev.embedserve.examples;

import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.labelsById;
import static dev.embedserve.client.Vectors.match;
import static dev.embedserve.client.Vectors.must;

import dev.embedserve.client.EmbedserveClient;
import dev.embedserve.client.EmbedserveClient.ScrollPage;
import dev.embedserve.client.EmbedserveClient.Stored;
import dev.embedserve.v1.ClusterRequest;
import dev.embedserve.v1.ClusterResponse;
import dev.embedserve.v1.FindDuplicatesResponse;
import dev.embedserve.v1.ScrollRequest;
import dev.embedserve.v1.WriteOptions;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Stores five short texts in a temporary collection, pages through it, clusters it and finds
 * its near-duplicates.
 *
 * <pre>
 * mvn -q test-compile exec:java -Dexec.classpathScope=test \
 *   -Dexec.mainClass=dev.embedserve.examples.AnalysisExample -Dexec.args="127.0.0.1:50051"
 * </pre>
 *
 * <p>The code between the "snippet" markers is the one shown in docs/clients.md.
 */
public final class AnalysisExample {
  private AnalysisExample() {}

  public static void main(String[] args) {
    String target = args.length > 0 ? args[0] : "127.0.0.1:50051";
    try (EmbedserveClient client = EmbedserveClient.builder(target).build()) {
      String collection = "analysis-example-" + System.nanoTime();
      client.createCollection(collection);
      try {
        client.upsert(
            collection,
            List.of(
                document("pasta", "Cook the pasta in salted water.", Map.of("topic", "cooking")),
                document("pasta-copy", "Cook the pasta in salted water!", Map.of("topic", "cooking")),
                document("bread", "Bake the bread in a hot oven.", Map.of("topic", "cooking")),
                document("rocket", "The rocket carried a satellite to orbit.", Map.of("topic", "space")),
                document("galaxy", "The telescope imaged a distant galaxy.", Map.of("topic", "space"))),
            WriteOptions.newBuilder().setStoreText(true).build());
        // snippet: scroll
        // One page: cursor null for the first, then the page's nextCursor() (null after the last).
        ScrollPage page = client.scroll(collection, null, 2);
        System.out.printf("first page: %d documents, last: %b%n", page.documents().size(), page.isLast());
        // Every document, through a lazy Stream that follows the cursor; filter, page size,
        // payloads and vectors are ScrollRequest's.
        List<String> cooking = client.scrollAll(ScrollRequest.newBuilder().setCollection(collection)
                .setFilter(must(match("topic", "cooking"))).setLimit(100).build())
            .map(Stored::id).sorted().toList();
        System.out.println("cooking: " + cooking);
        // end snippet
        // snippet: cluster
        // k-means with k = 2. Or: setKMin/setKMax (k by silhouette), setAlgorithm(CLUSTER_ALGORITHM_HDBSCAN)
        // with setMinClusterSize, setWriteLabel("cluster"), setTexts(textList(texts)) for texts.
        ClusterResponse clusters = client.cluster(ClusterRequest.newBuilder().setCollection(collection).setK(2).build());
        new TreeMap<>(labelsById(clusters)).forEach((id, label) -> System.out.printf("%s: cluster %d%n", id, label));
        // end snippet
        // snippet: duplicates
        FindDuplicatesResponse duplicates = client.findDuplicates(collection, 0.9f); // cosine threshold
        duplicates.getPairsList().forEach(pair ->
            System.out.printf("duplicates: %s %s %.3f%n", pair.getA(), pair.getB(), pair.getScore()));
        // end snippet
      } finally {
        client.deleteCollection(collection);
      }
    }
  }
}
