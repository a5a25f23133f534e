package dev.embedserve.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
class EmbedExampleTest {
  @Test
  void exampleRuns() throws Exception {
    PrintStream original = System.out;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    try {
      EmbedExample.main(new String[] {LiveServer.target(), "one", "two"});
    } finally {
      System.setOut(original);
    }
    List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
    assertEquals(
        List.of(
            "2 vectors of 384 dimensions",
            "2 int8 vectors of 384 bytes",
            "request 0: 1 vectors",
            "request 1: 1 vectors",
            "batch 0 durable: 2 documents in total"),
        lines.subList(0, 5));
    assertTrue(lines.get(5).matches("search: 0 1[.,]000 en"), lines.get(5));
    assertTrue(lines.get(6).matches("search: 1 \\S+ en"), lines.get(6));
    assertEquals("group en: [0, 1]", lines.get(7));
    assertTrue(lines.get(8).matches("recommend: 1 \\S+"), lines.get(8));
    // "one two. " 40 times cut by MiniLM's tokens; the group holds 2 distinct passages.
    assertTrue(lines.get(9).matches("3 passages; group essay: \\[essay#([0-2]), essay#(?!\\1)[0-2]\\]"), lines.get(9));
    assertEquals(10, lines.size(), String.join("\n", lines));
  }

  /** clients/java/README.md shows exactly the marked snippets of EmbedExample. */
  @Test
  void readmeSnippetsAreTheExample() throws Exception {
    Map<String, String> snippets =
        Snippets.of(Path.of("src/test/java/dev/embedserve/examples/EmbedExample.java"));
    String readme = Files.readString(Path.of("README.md"));
    snippets.forEach(
        (name, block) ->
            assertTrue(
                readme.contains(block),
                "README.md lacks the " + name + " snippet of EmbedExample:\n" + block));
    assertEquals(
        List.of("connect", "embed", "quantized", "stream", "ingest", "search", "groups", "recommend", "split"),
        List.copyOf(snippets.keySet()));
  }
}
