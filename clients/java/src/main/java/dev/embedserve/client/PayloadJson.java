package dev.embedserve.client;

import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.MalformedJsonException;
import java.io.IOException;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a payload sent as JSON text ({@code StoredDocument.payload_json}, a read with exact
 * payloads) with its numbers exact, which neither a {@code Struct} nor protobuf's {@code
 * JsonFormat} (it parses into a {@code Struct}) keeps: an integer (no fraction or exponent) that a
 * {@code long} holds is a {@code Long}, 9007199254740993 too; any other number a {@code Double}.
 * Strings are {@code String}, true and false {@code Boolean}, null {@code null}, objects
 * unmodifiable {@code Map<String, Object>} in their order, arrays unmodifiable {@code List<Object>}.
 * Strict RFC 8259 (Gson's {@link JsonReader} in strict mode): anything else is an {@link
 * IllegalArgumentException} naming where (mostly as Gson does: line, column and path).
 */
final class PayloadJson {
  /** Deeper than any payload the server stores (32); a bound on the recursion. */
  private static final int MAX_DEPTH = 512;

  /** The JSON object {@code text}. */
  static Map<String, Object> parseObject(String text) {
    int at = text.length() - text.replaceFirst("^[ \t\n\r]+", "").length(); // JSON's whitespace
    if (at == text.length() || text.charAt(at) != '{') {
      String found =
          at < text.length() ? "'" + text.charAt(at) + "' at character " + (at + 1) : "the end";
      throw new IllegalArgumentException("expected a JSON object, found " + found);
    }
    JsonReader in = new JsonReader(new StringReader(text));
    in.setStrictness(Strictness.STRICT);
    in.setNestingLimit(MAX_DEPTH);
    try {
      @SuppressWarnings("unchecked")
      Map<String, Object> object = (Map<String, Object>) value(in);
      in.peek(); // strict: anything but whitespace after the object throws
      return object;
    } catch (IOException e) { // Gson's, as "... at line L column C path $.a"
      String message = e.getMessage().replaceFirst("\nSee https://\\S+$", ""); // a link to a guide
      // Strict mode's refusals come with advice to read leniently: none here.
      message = message.replaceFirst("^Use JsonReader.* malformed JSON", "Malformed JSON");
      throw new IllegalArgumentException(message, e);
    }
  }

  private static Object value(JsonReader in) throws IOException {
    switch (in.peek()) {
      case BEGIN_OBJECT:
        Map<String, Object> object = new LinkedHashMap<>();
        in.beginObject();
        while (in.hasNext()) {
          object.put(in.nextName(), value(in)); // a repeated key: the last one, as json.loads does
        }
        in.endObject();
        return Collections.unmodifiableMap(object);
      case BEGIN_ARRAY:
        List<Object> array = new ArrayList<>();
        in.beginArray();
        while (in.hasNext()) {
          array.add(value(in));
        }
        in.endArray();
        return Collections.unmodifiableList(array);
      case STRING:
        return in.nextString();
      case BOOLEAN:
        return in.nextBoolean();
      case NULL:
        in.nextNull();
        return null;
      case NUMBER:
        String number = in.nextString(); // the literal as written: -0, 1e999 and 2**63 too
        if (number.indexOf('.') < 0 && number.indexOf('e') < 0 && number.indexOf('E') < 0) {
          try {
            return Long.parseLong(number);
          } catch (NumberFormatException pastLong) {
            // past the long range: the nearest double, as for any other number
          }
        }
        double value = Double.parseDouble(number);
        if (Double.isInfinite(value)) {
          throw new MalformedJsonException(
              "Number " + number + " out of a double's range at path " + in.getPreviousPath());
        }
        return value;
      default: // END_*, NAME, END_DOCUMENT: peek throws where a value is due
        throw new IllegalStateException(in.peek() + " where a value is due at " + in.getPath());
    }
  }
}
