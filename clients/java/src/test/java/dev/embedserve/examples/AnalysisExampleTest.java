package dev.embedserve.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.embedserve.client.LiveServer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(LiveServer.class)
class AnalysisExampleTest {
  @Test
  void exampleRuns() {
    PrintStream original = System.out;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    try {
      AnalysisExample.main(new String[] {LiveServer.target()});
    } finally {
      System.setOut(original);
    }
    List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
    String all = String.join("\n", lines);
    assertEquals(8, lines.size(), all);
    assertEquals("first page: 2 documents, last: false", lines.get(0));
    assertEquals("cooking: [bread, pasta, pasta-copy]", lines.get(1));
    // bread, galaxy, pasta, pasta-copy, rocket: the cooking texts in one cluster, space in the other.
    String cookingLabel = lines.get(4).replace("pasta: ", "");
    String spaceLabel = lines.get(6).replace("rocket: ", "");
    assertNotEquals(cookingLabel, spaceLabel, all);
    assertEquals(
        List.of(
            "bread: " + cookingLabel,
            "galaxy: " + spaceLabel,
            "pasta: " + cookingLabel,
            "pasta-copy: " + cookingLabel,
            "rocket: " + spaceLabel),
        lines.subList(2, 7));
    assertTrue(lines.get(7).matches("duplicates: pasta pasta-copy 0[.,]9\\d\\d"), all);
  }

  /** docs/clients.md shows exactly the marked snippets of AnalysisExample. */
  @Test
  void docsSnippetsAreTheExample() throws Exception {
    Map<String, String> snippets =
        Snippets.of(Path.of("src/test/java/dev/embedserve/examples/AnalysisExample.java"));
    String docs = Files.readString(LiveServer.repoRoot().resolve("docs/clients.md"));
    snippets.forEach(
        (name, block) ->
            assertTrue(
                docs.contains(block),
                "docs/clients.md lacks the " + name + " snippet of AnalysisExample:\n" + block));
    assertEquals(List.of("scroll", "cluster", "duplicates"), List.copyOf(snippets.keySet()));
  }
}
