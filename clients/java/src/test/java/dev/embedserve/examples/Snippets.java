package dev.embedserve.examples;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The code between "// snippet: NAME" and "// end snippet" markers, as Markdown shows it. */
final class Snippets {
  private static final Pattern SNIPPET =
      Pattern.compile("(?s)\\n( *)// snippet: (\\w+)\\n(.*?)\\n *// end snippet");

  private Snippets() {}

  /** Each snippet of {@code source} by name, in order, as a java code block without indent. */
  static Map<String, String> of(Path source) throws IOException {
    Matcher snippet = SNIPPET.matcher(Files.readString(source));
    Map<String, String> blocks = new LinkedHashMap<>();
    while (snippet.find()) {
      String indent = snippet.group(1);
      StringBuilder block = new StringBuilder("```java\n");
      for (String line : snippet.group(3).split("\n")) {
        block.append(line.startsWith(indent) ? line.substring(indent.length()) : line).append('\n');
      }
      blocks.put(snippet.group(2), block.append("```").toString());
    }
    return blocks;
  }
}
