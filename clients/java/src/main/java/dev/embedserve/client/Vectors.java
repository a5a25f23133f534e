package dev.embedserve.client;

import com.google.protobuf.ListValue;
import com.google.protobuf.NullValue;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.embedserve.v1.ClusterResponse;
import dev.embedserve.v1.Condition;
import dev.embedserve.v1.DatetimeRange;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.Example;
import dev.embedserve.v1.Filter;
import dev.embedserve.v1.GeoBoundingBox;
import dev.embedserve.v1.GeoPoint;
import dev.embedserve.v1.GeoPolygon;
import dev.embedserve.v1.GeoRadius;
import dev.embedserve.v1.GeoRing;
import dev.embedserve.v1.HasId;
import dev.embedserve.v1.IsEmpty;
import dev.embedserve.v1.MatchAny;
import dev.embedserve.v1.MatchExcept;
import dev.embedserve.v1.MatchText;
import dev.embedserve.v1.MatchTextAny;
import dev.embedserve.v1.MatchValue;
import dev.embedserve.v1.MinShould;
import dev.embedserve.v1.Nested;
import dev.embedserve.v1.PassageSplit;
import dev.embedserve.v1.Proximity;
import dev.embedserve.v1.QueryParams;
import dev.embedserve.v1.Recency;
import dev.embedserve.v1.SearchRerank;
import dev.embedserve.v1.TextList;
import dev.embedserve.v1.ValuesCount;
import dev.embedserve.v1.Vector;
import dev.embedserve.v1.WriteOptions;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.DoubleAccumulator;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * Builders for the VectorService messages: documents, write options, examples, filters, payloads
 * and cluster texts; and readers of payloads and cluster labels.
 *
 * <pre>{@code
 * import static dev.embedserve.client.Vectors.*;
 *
 * client.ingest("notes", List.of(document("1", "some text", Map.of("lang", "en"))));
 * client.upsert("notes", List.of(document("2", longText)), split(256, 32)); // as passages
 * client.search("notes", "a query", must(match("lang", "en")), limit(5));
 * }</pre>
 */
public final class Vectors {
  private Vectors() {}

  /**
   * The server's limit (the Python client's {@code MAX_PAYLOAD_DEPTH}): a payload's objects and
   * arrays nest at most this deep, its own object the first level. Deeper, the server's protobuf
   * decoder refuses the whole message with an error that names nothing, and an ingestion stream
   * may have stored the batch without acknowledging it.
   */
  public static final int MAX_PAYLOAD_DEPTH = 32;

  /**
   * A text document, embedded by the server (payload may be null or empty; see {@link #struct}).
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT for a null id or text, an id or text
   *     that is no text (half of a surrogate pair, which protobuf would send as '?'), or a payload
   *     {@link #struct} refuses, naming the document
   */
  public static Document document(String id, String text, Map<String, ?> payload) {
    if (text == null) {
      throw invalid("document " + quoted(id) + " needs a text, got null");
    }
    Document.Builder doc = Document.newBuilder().setId(documentId(id));
    String problem = Unicode.surrogateProblem(text);
    if (problem != null) {
      throw invalid("document " + quoted(id) + ": text " + problem);
    }
    doc.setText(text);
    if (payload != null && !payload.isEmpty()) {
      doc.setPayload(struct(payload, "document " + quoted(id) + ": "));
    }
    return doc.build();
  }

  /** A text document without payload. */
  public static Document document(String id, String text) {
    return document(id, text, null);
  }

  /**
   * A document with a ready vector of the collection's size.
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT as {@link #document(String, String,
   *     Map)}, and for a null vector
   */
  public static Document document(String id, float[] vector, Map<String, ?> payload) {
    if (vector == null) {
      throw invalid("document " + quoted(id) + " needs a vector, got null");
    }
    Document.Builder doc = Document.newBuilder().setId(documentId(id)).setVector(vector(vector));
    if (payload != null && !payload.isEmpty()) {
      doc.setPayload(struct(payload, "document " + quoted(id) + ": "));
    }
    return doc.build();
  }

  /**
   * {@code id}, refused when null (protobuf's own refusal is a bare NullPointerException) or no
   * text (protobuf would write half of a surrogate pair as '?', so that two ids become one).
   */
  private static String documentId(String id) {
    if (id == null) {
      throw invalid("a document needs an id, got null");
    }
    String problem = Unicode.surrogateProblem(id);
    if (problem != null) {
      throw invalid("document id " + quoted(id) + " " + problem);
    }
    return id;
  }

  private static String quoted(String id) {
    return id == null ? "null" : "'" + Unicode.shown(id) + "'";
  }

  private static StatusRuntimeException invalid(String description) {
    return Status.INVALID_ARGUMENT.withDescription(description).asRuntimeException();
  }

  /**
   * {@code n}, refused when negative: a count's proto field is a uint32, where a negative int
   * would arrive as a count past 2**31 (-1 as 4294967295). The int counts of the client's methods
   * pass here, and those of the search, recommend, scroll and rerank requests it is given.
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT naming {@code what}
   */
  static int requireCount(String what, int n) {
    if (n < 0) {
      throw invalid(what + " must be a count of at least 0, got " + n);
    }
    return n;
  }

  /** A Vector message. */
  public static Vector vector(float[] values) {
    Vector.Builder vector = Vector.newBuilder();
    for (float value : values) {
      vector.addValues(value);
    }
    return vector.build();
  }

  /**
   * Write options that store each text document as passages of {@code maxTokens} tokens of text,
   * each repeating {@code overlapTokens} tokens from the end of the one before (at most half of
   * {@code maxTokens}): points {@code "<id>#0"}, {@code "<id>#1"}, ... holding the document's
   * payload plus {@code doc_id}, {@code passage}, {@code passages} and {@code span} ({@code [start,
   * end)}, its characters in the text counted in code points, not UTF-16 units: {@code
   * text.offsetByCodePoints(0, start)} is where it starts). Group searches by {@code "doc_id"} to
   * get one answer per document. Documents given as vectors are stored as they are. Other options
   * go on {@code split(256, 32).toBuilder()}, e.g. {@code .setStoreText(true)} (the passage's
   * text).
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT for a negative count (the server
   *     answers the same for a count past the model's maximum or an overlap past half)
   */
  public static WriteOptions split(int maxTokens, int overlapTokens) {
    requireCount("split maxTokens", maxTokens);
    requireCount("split overlapTokens", overlapTokens);
    return WriteOptions.newBuilder()
        .setSplit(PassageSplit.newBuilder().setMaxTokens(maxTokens).setOverlapTokens(overlapTokens))
        .build();
  }

  /**
   * As {@link #split(int, int)} with the server's defaults: passages of as many tokens as the
   * model takes, each repeating an eighth of them.
   */
  public static WriteOptions split() {
    return WriteOptions.newBuilder().setSplit(PassageSplit.getDefaultInstance()).build();
  }

  /** A stored document as a recommendation example. */
  public static Example id(String id) {
    return Example.newBuilder().setId(id).build();
  }

  /** Stored documents as recommendation examples. */
  public static List<Example> ids(String... ids) {
    return ids(Arrays.asList(ids));
  }

  /** Stored documents as recommendation examples. */
  public static List<Example> ids(List<String> ids) {
    List<Example> examples = new ArrayList<>(ids.size());
    for (String id : ids) {
      examples.add(id(id));
    }
    return Collections.unmodifiableList(examples);
  }

  /** A text example, embedded like a query. */
  public static Example textExample(String text) {
    return Example.newBuilder().setText(text).build();
  }

  /** A vector example. */
  public static Example vectorExample(float[] values) {
    return Example.newBuilder().setVector(vector(values)).build();
  }

  /**
   * Query parameters asking for {@code n} results (other parameters: the server's defaults).
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT for a negative {@code n}
   */
  public static QueryParams limit(int n) {
    return QueryParams.newBuilder().setLimit(requireCount("limit", n)).build();
  }

  /**
   * Fresher documents first among equally good matches, for {@code search(..., recency)} or {@code
   * setRecency} on a {@code SearchRequest} or {@code RecommendRequest}: each of the best hits keeps
   * (1 - weight) of its score and earns up to weight more by its freshness, 0.5 ^ (age / {@code
   * halfLifeHours}), the age measured from the RFC 3339 date and time at payload[key] (a dotted
   * path reaches into objects; a document without one earns nothing). Hits carry the weighed
   * scores. The weight defaults to 0.5 and the time to the server's clock; set them, and the
   * number of hits weighed (default 100), on {@code recency(key, hours).toBuilder()}: {@code
   * .setWeight(0.8).setNow("2026-12-05T12:00:00Z").setCandidates(200)}. Cosine and dot
   * collections only; with diversity or group_by the server answers {@code INVALID_ARGUMENT}.
   */
  public static Recency recency(String key, double halfLifeHours) {
    return Recency.newBuilder().setKey(key).setHalfLifeHours(halfLifeHours).build();
  }

  /**
   * Nearer documents first among equally good matches, for {@code search(..., recency,
   * proximity)} or {@code setProximity} on a {@code SearchRequest} or {@code RecommendRequest}:
   * each of the best hits keeps (1 - weight) of its score and earns up to weight more by its
   * closeness, 0.5 ^ (distance / {@code halfDistanceM}), the distance in metres from lat, lon (in
   * degrees) to the place at payload[key] (a {"lat": ..., "lon": ...} object, the nearest of a
   * list of them; a dotted path reaches into objects; a document without one earns nothing). Hits
   * carry the weighed scores; with a recency weighing too, freshness and closeness multiply. The
   * weight defaults to 0.5; set it, and the number of hits weighed (default 100), on {@code
   * proximity(key, lat, lon, metres).toBuilder()}: {@code .setWeight(0.8).setCandidates(200)}.
   * Cosine and dot collections only; with diversity or group_by the server answers {@code
   * INVALID_ARGUMENT}.
   */
  public static Proximity proximity(String key, double lat, double lon, double halfDistanceM) {
    return Proximity.newBuilder()
        .setKey(key)
        .setCenter(GeoPoint.newBuilder().setLat(lat).setLon(lon))
        .setHalfDistanceM(halfDistanceM)
        .build();
  }

  /**
   * A search's second stage, for {@code search(..., rerank)} or {@code setRerank} on a {@code
   * SearchRequest} (those of a {@code SearchBatchRequest} too): the hits of a text query are read
   * by the server's reranker (its {@code --reranker}) together with the query text and reordered
   * by its scores, which the hits then carry, in windows of {@code candidates} (0: the server's
   * default, 50, or the limit if more; at least the limit, at most 1000): the best {@code
   * candidates} among themselves, then the next, ties by id. The limit and offset cut the page
   * from that order, so pages of one limit fit together; the score threshold applies to the first
   * stage. Each hit's text is the string at payload[{@code textKey}] (null or empty: {@code
   * "text"}, where {@code WriteOptions.setStoreText(true)} keeps it; a dotted path reaches into
   * objects). With a vector query, diversity, recency or proximity the server answers {@code
   * INVALID_ARGUMENT};
   * for a hit without text, or without a reranker, {@code FAILED_PRECONDITION}.
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT for a negative {@code candidates}
   */
  public static SearchRerank rerank(int candidates, String textKey) {
    requireCount("rerank candidates", candidates);
    SearchRerank.Builder rerank = SearchRerank.newBuilder();
    if (candidates > 0) {
      rerank.setCandidates(candidates);
    }
    if (textKey != null) {
      rerank.setTextKey(textKey);
    }
    return rerank.build();
  }

  /**
   * As {@link #rerank(int, String)} with the server's defaults: the best 50 hits (or limit +
   * offset if more), their text at payload["text"].
   */
  public static SearchRerank rerank() {
    return SearchRerank.getDefaultInstance();
  }

  /**
   * Texts to cluster: {@code ClusterRequest.newBuilder().setTexts(textList(texts))}.
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT for a text that is no text (half of a
   *     surrogate pair), naming it: "text 3 holds ..."
   */
  public static TextList textList(List<String> texts) {
    Unicode.requireTexts("", texts);
    return TextList.newBuilder().addAllTexts(texts).build();
  }

  /** Each clustered id's label (-1: HDBSCAN noise), in the response's order. */
  public static Map<String, Integer> labelsById(ClusterResponse response) {
    Map<String, Integer> labels = new LinkedHashMap<>();
    for (int i = 0; i < response.getIdsCount(); i++) {
      labels.put(response.getIds(i), response.getLabels(i));
    }
    return Collections.unmodifiableMap(labels);
  }

  /** A filter that every condition must match. */
  public static Filter must(Condition... conditions) {
    return Filter.newBuilder().addAllMust(Arrays.asList(conditions)).build();
  }

  /** A filter that at least one condition must match. */
  public static Filter should(Condition... conditions) {
    return Filter.newBuilder().addAllShould(Arrays.asList(conditions)).build();
  }

  /** A filter that no condition may match. */
  public static Filter mustNot(Condition... conditions) {
    return Filter.newBuilder().addAllMustNot(Arrays.asList(conditions)).build();
  }

  /** payload[key] == value. */
  public static Condition match(String key, String value) {
    return Condition.newBuilder()
        .setMatch(MatchValue.newBuilder().setKey(key).setText(value))
        .build();
  }

  /** payload[key] == value, for an integer. */
  public static Condition match(String key, long value) {
    return Condition.newBuilder()
        .setMatch(MatchValue.newBuilder().setKey(key).setInteger(value))
        .build();
  }

  /** payload[key] == value, for a boolean. */
  public static Condition match(String key, boolean value) {
    return Condition.newBuilder()
        .setMatch(MatchValue.newBuilder().setKey(key).setBoolean(value))
        .build();
  }

  /** payload[key] is one of values. */
  public static Condition matchAny(String key, String... values) {
    return Condition.newBuilder()
        .setMatchAny(MatchAny.newBuilder().setKey(key).addAllTexts(Arrays.asList(values)))
        .build();
  }

  /**
   * The text at payload[key] holds every word of text, in any order (lowercased, not stemmed);
   * the field needs a text payload index.
   */
  public static Condition matchText(String key, String text) {
    return Condition.newBuilder()
        .setMatchText(MatchText.newBuilder().setKey(key).setText(text))
        .build();
  }

  /**
   * payload[key] is none of values (of a list, one item at least is none of them). A key with no
   * value (missing, null or an empty list) does not match: add {@code isEmpty(key)} in a should
   * for those.
   */
  public static Condition matchExcept(String key, String... values) {
    return Condition.newBuilder()
        .setMatchExcept(MatchExcept.newBuilder().setKey(key).addAllTexts(Arrays.asList(values)))
        .build();
  }

  /**
   * payload[key] is none of values, for integers (of a list, one item at least is none of them); a
   * key with no value (missing, null or an empty list) does not match.
   */
  public static Condition matchExcept(String key, long... values) {
    MatchExcept.Builder except = MatchExcept.newBuilder().setKey(key);
    for (long value : values) {
      except.addIntegers(value);
    }
    return Condition.newBuilder().setMatchExcept(except).build();
  }

  /**
   * The text at payload[key] holds at least one of the words of text, read as {@link #matchText}
   * reads them (lowercased, not stemmed); like matchText, the field needs a text payload index.
   */
  public static Condition matchTextAny(String key, String text) {
    return Condition.newBuilder()
        .setMatchTextAny(MatchTextAny.newBuilder().setKey(key).setText(text))
        .build();
  }

  /**
   * gte <= payload[key] < lt on a date and time; null leaves that side open (not both). Bounds and
   * stored values are RFC 3339 ("2026-12-01T10:00:00Z", "2026-12-01T12:00:00+02:00"), a date
   * ("2026-12-01", midnight UTC) or a time without an offset, read as UTC; a datetime payload
   * index makes it fast on large collections.
   *
   * @throws IllegalArgumentException if both bounds are null
   */
  public static Condition datetimeRange(String key, String gte, String lt) {
    if (gte == null && lt == null) {
      throw new IllegalArgumentException("datetimeRange needs a bound: gte or lt");
    }
    DatetimeRange.Builder range = DatetimeRange.newBuilder().setKey(key);
    if (gte != null) {
      range.setGte(gte);
    }
    if (lt != null) {
      range.setLt(lt);
    }
    return Condition.newBuilder().setDatetimeRange(range).build();
  }

  /**
   * The place at payload[key] (a {"lat": ..., "lon": ...} object, or a list of them) lies within
   * radiusM metres (above 0) of lat, lon, in degrees; a geo payload index makes it fast on large
   * collections.
   */
  public static Condition geoRadius(String key, double lat, double lon, double radiusM) {
    return Condition.newBuilder()
        .setGeoRadius(
            GeoRadius.newBuilder()
                .setKey(key)
                .setCenter(GeoPoint.newBuilder().setLat(lat).setLon(lon))
                .setRadiusM(radiusM))
        .build();
  }

  /**
   * The place at payload[key] (a {"lat": ..., "lon": ...} object, or a list of them) lies within
   * the box from northLat, westLon (its north-west corner) to southLat, eastLon (its south-east
   * one), in degrees; northLat is at least southLat. A geo payload index makes it fast on large
   * collections.
   */
  public static Condition geoBox(
      String key, double northLat, double westLon, double southLat, double eastLon) {
    return Condition.newBuilder()
        .setGeoBoundingBox(
            GeoBoundingBox.newBuilder()
                .setKey(key)
                .setTopLeft(GeoPoint.newBuilder().setLat(northLat).setLon(westLon))
                .setBottomRight(GeoPoint.newBuilder().setLat(southLat).setLon(eastLon)))
        .build();
  }

  /** The point at lat, lon, in degrees: a corner for {@link #geoPolygon}. */
  public static GeoPoint place(double lat, double lon) {
    return GeoPoint.newBuilder().setLat(lat).setLon(lon).build();
  }

  /**
   * The place at payload[key] (a {"lat": ..., "lon": ...} object, or a list of them) lies within
   * the polygon whose ring is exterior and outside each of holes (null or empty for none), rings
   * of corners in order ({@link #place}). A ring is closed for you (its first corner repeated at
   * its end) when it is not already; each needs 3 or more different corners, else the server
   * refuses the condition (INVALID_ARGUMENT). A geo payload index makes it fast on large
   * collections.
   */
  public static Condition geoPolygon(
      String key, List<GeoPoint> exterior, List<List<GeoPoint>> holes) {
    GeoPolygon.Builder polygon =
        GeoPolygon.newBuilder()
            .setKey(key)
            .setExterior(GeoRing.newBuilder().addAllCorners(exterior));
    for (List<GeoPoint> hole : holes == null ? List.<List<GeoPoint>>of() : holes) {
      polygon.addInteriors(GeoRing.newBuilder().addAllCorners(hole));
    }
    return Condition.newBuilder().setGeoPolygon(polygon).build();
  }

  /** payload[key] holds no value: missing, null or an empty list. */
  public static Condition isEmpty(String key) {
    return Condition.newBuilder().setIsEmpty(IsEmpty.newBuilder().setKey(key)).build();
  }

  /** The document's id is one of ids. */
  public static Condition hasId(String... ids) {
    return Condition.newBuilder().setHasId(HasId.newBuilder().addAllIds(Arrays.asList(ids))).build();
  }

  /** A filter as a condition, to combine filters. */
  public static Condition nested(Filter filter) {
    return Condition.newBuilder().setFilter(filter).build();
  }

  /**
   * payload[key] is a list of objects and one of them, alone, matches filter, whose keys are read
   * inside each object ("by", not "reviews[].by"): {@code anyObject("reviews", must(match("by",
   * "ana"), ...))} needs ana's review itself to meet the other conditions, where conditions on
   * "reviews[].by" and "reviews[].stars" outside it may be met by two different objects. hasId
   * inside filter is refused (INVALID_ARGUMENT). ({@link #nested}, unlike this, only turns a
   * filter into a condition.)
   */
  public static Condition anyObject(String key, Filter filter) {
    return Condition.newBuilder()
        .setNested(Nested.newBuilder().setKey(key).setFilter(filter))
        .build();
  }

  /**
   * gte <= n <= lte on the number n of values at payload[key]: a list's length, 1 for a single
   * value, 0 when the key is missing, null or an empty list; null leaves that side open (not
   * both).
   *
   * @throws IllegalArgumentException if both bounds are null, or one is negative
   */
  public static Condition valuesCount(String key, Integer gte, Integer lte) {
    if (gte == null && lte == null) {
      throw new IllegalArgumentException("valuesCount needs a bound: gte or lte");
    }
    if ((gte != null && gte < 0) || (lte != null && lte < 0)) {
      throw new IllegalArgumentException(
          "valuesCount bounds are counts, from 0: gte " + gte + ", lte " + lte);
    }
    ValuesCount.Builder count = ValuesCount.newBuilder().setKey(key);
    if (gte != null) {
      count.setGte(gte);
    }
    if (lte != null) {
      count.setLte(lte);
    }
    return Condition.newBuilder().setValuesCount(count).build();
  }

  /**
   * A filter that at least n of conditions must match, n from 1 to their number. To require it
   * together with other conditions, set its min_should on their filter:
   *
   * <pre>{@code
   * Filter f = must(match("lang", "en")).toBuilder()
   *     .setMinShould(atLeast(2, match("tags", "vegan"), isEmpty("reviews"), c).getMinShould())
   *     .build();
   * }</pre>
   *
   * @throws IllegalArgumentException if n is not from 1 to the number of conditions
   */
  public static Filter atLeast(int n, Condition... conditions) {
    if (n < 1 || n > conditions.length) {
      throw new IllegalArgumentException(
          "atLeast needs n from 1 to its " + conditions.length + " conditions, got " + n);
    }
    return Filter.newBuilder()
        .setMinShould(
            MinShould.newBuilder().addAllConditions(Arrays.asList(conditions)).setMinCount(n))
        .build();
  }

  /**
   * A payload Struct from JSON-like values: null, String, Number, Boolean, Map with String keys,
   * Iterable or array. A Struct carries every number as a double, so an integer that a double
   * would change (a {@code Long}, {@code BigInteger} or whole {@code BigDecimal} past 2**53, such
   * as {@code (1L << 53) + 1}) is refused rather than stored changed: send it as a String. Any
   * other integer {@code Number} ({@code AtomicLong}, {@code LongAdder}, {@code LongAccumulator},
   * ...) is read as its {@code longValue()} and refused the same way; a {@code Float}, {@code
   * Double}, {@code DoubleAdder} or {@code DoubleAccumulator} is sent as its double. Objects and
   * arrays nest at most {@link #MAX_PAYLOAD_DEPTH} deep, the payload's own object the first. A
   * string or key holding half of a surrogate pair (which protobuf would send as '?') is refused.
   *
   * @throws io.grpc.StatusRuntimeException INVALID_ARGUMENT for any other value, an inexact
   *     integer, deeper nesting or a string that is no text, naming where in the payload it is (as
   *     the Python client does: "payload 'a.b' holds &#92;udc00 at character 4, half of a
   *     surrogate pair and not a character")
   */
  public static Struct struct(Map<String, ?> values) {
    return struct(values, "");
  }

  /** {@link #struct}, the errors starting with {@code what} (e.g. "document '7': "). */
  private static Struct struct(Map<String, ?> values, String what) {
    try {
      return value(values, 1).getStructValue();
    } catch (PayloadProblem problem) {
      throw invalid(what + problem.describe());
    }
  }

  /**
   * A protobuf Value from a JSON-like Java value (see {@link #struct}), checked as a payload's
   * field is.
   */
  public static Value value(Object value) {
    try {
      return value(value, 2);
    } catch (PayloadProblem problem) {
      throw invalid(problem.describe());
    }
  }

  /**
   * {@code value} as a Value; {@code depth} counts the objects and arrays holding it, and it too
   * if it is one.
   */
  private static Value value(Object value, int depth) {
    if (value == null) {
      return Value.newBuilder().setNullValue(NullValue.NULL_VALUE).build();
    }
    if (value instanceof String s) {
      String problem = Unicode.surrogateProblem(s);
      if (problem != null) {
        throw PayloadProblem.text(problem);
      }
      return Value.newBuilder().setStringValue(s).build();
    }
    if (value instanceof Number n) {
      return Value.newBuilder().setNumberValue(exactDouble(n)).build();
    }
    if (value instanceof Boolean b) {
      return Value.newBuilder().setBoolValue(b).build();
    }
    if (value instanceof Map<?, ?> || value instanceof Iterable<?> || value instanceof Object[]) {
      if (depth > MAX_PAYLOAD_DEPTH) {
        throw new PayloadProblem(
            false, "objects and arrays nest at most " + MAX_PAYLOAD_DEPTH + " deep");
      }
    }
    if (value instanceof Map<?, ?> map) {
      Struct.Builder struct = Struct.newBuilder();
      for (Map.Entry<?, ?> entry : map.entrySet()) {
        if (!(entry.getKey() instanceof String key)) {
          throw new PayloadProblem(false, "keys must be strings, got " + entry.getKey());
        }
        String notText = Unicode.surrogateProblem(key);
        if (notText != null) {
          throw PayloadProblem.text("key '" + Unicode.shown(key) + "' " + notText);
        }
        try {
          struct.putFields(key, value(entry.getValue(), depth + 1));
        } catch (PayloadProblem problem) {
          throw problem.within("." + key);
        }
      }
      return Value.newBuilder().setStructValue(struct).build();
    }
    if (value instanceof Iterable<?> items) {
      ListValue.Builder list = ListValue.newBuilder();
      int index = 0;
      for (Object item : items) {
        try {
          list.addValues(value(item, depth + 1));
        } catch (PayloadProblem problem) {
          throw problem.within("[" + index + "]");
        }
        index++;
      }
      return Value.newBuilder().setListValue(list).build();
    }
    if (value instanceof Object[] items) {
      return value(Arrays.asList(items), depth);
    }
    throw new PayloadProblem(
        false, "unsupported payload value of type " + value.getClass().getName());
  }

  /**
   * {@code n} as the double a Struct carries, refusing an integer that the double would change
   * (past 2**53, and not a multiple of the power of two there), as the Python client does. A
   * double ({@code Double}, {@code Float}, {@code DoubleAdder}, {@code DoubleAccumulator}) is sent
   * as it is; a {@code BigInteger} or {@code BigDecimal} is compared exactly; any other {@code
   * Number} (Long, Integer, AtomicLong, LongAdder, LongAccumulator, ...) whose double is whole is
   * an integer, its {@code longValue()} compared.
   */
  private static double exactDouble(Number n) {
    double d = n.doubleValue();
    if (n instanceof Double
        || n instanceof Float
        || n instanceof DoubleAdder
        || n instanceof DoubleAccumulator) {
      return d;
    }
    BigInteger integer = null;
    if (n instanceof BigInteger b) {
      integer = b;
    } else if (n instanceof BigDecimal b) {
      if (b.stripTrailingZeros().scale() > 0) {
        return d; // a fraction: sent as its nearest double
      }
      integer = b.toBigIntegerExact();
    } else if (Double.isFinite(d) && d == Math.rint(d)) {
      long v = n.longValue();
      if (d < 0x1p63 && (long) d == v) { // (long) 2**63 would be Long.MAX_VALUE
        return d;
      }
      throw inexact(BigInteger.valueOf(v), d);
    }
    if (integer != null
        && !(Double.isFinite(d) && new BigDecimal(d).toBigIntegerExact().equals(integer))) {
      throw inexact(integer, d);
    }
    return d; // a Number of another kind that is no whole number: sent as its double
  }

  private static PayloadProblem inexact(BigInteger integer, double d) {
    String changed = Double.isFinite(d) ? new BigDecimal(d).toBigInteger().toString() : "" + d;
    return new PayloadProblem(
        true,
        integer
            + " is past 2**53, and a protobuf Struct carries numbers as doubles, which would change"
            + " it to "
            + changed
            + "; send it as a string (or over HTTP, whose JSON keeps it)");
  }

  /**
   * Why a payload value cannot be sent as it is. Its path is added on the way out of the walk, so
   * that a payload without problems costs no paths.
   */
  private static final class PayloadProblem extends RuntimeException {
    private final boolean number;
    private final boolean text;
    private String path = "";

    PayloadProblem(boolean number, String problem) {
      this(number, false, problem);
    }

    private PayloadProblem(boolean number, boolean text, String problem) {
      super(problem, null, false, false);
      this.number = number;
      this.text = text;
    }

    /** A string or key that is no text: "holds &#92;ud800 at character 2, ...". */
    static PayloadProblem text(String problem) {
      return new PayloadProblem(false, true, problem);
    }

    PayloadProblem within(String step) {
      path = step + path;
      return this;
    }

    /**
     * The Python client's words: "payload 'ids[1]': 9007...", "payload 'a.b' holds
     * &#92;ud800 ...", "payload 'a' key 'b&#92;ud800' holds ..." or "payload.a.b: objects ...".
     */
    String describe() {
      if (text) {
        return path.isEmpty()
            ? "payload " + getMessage()
            : "payload '" + path.substring(path.startsWith(".") ? 1 : 0) + "' " + getMessage();
      }
      if (number) {
        return path.isEmpty()
            ? getMessage()
            : "payload '" + path.substring(path.startsWith(".") ? 1 : 0) + "': " + getMessage();
      }
      return "payload" + path + ": " + getMessage();
    }
  }

  /** A payload Struct as a Map (numbers as Double, lists as List, structs as Map). */
  public static Map<String, Object> toMap(Struct struct) {
    Map<String, Object> map = new LinkedHashMap<>();
    struct.getFieldsMap().forEach((key, value) -> map.put(key, toJava(value)));
    return Collections.unmodifiableMap(map);
  }

  private static Object toJava(Value value) {
    return switch (value.getKindCase()) {
      case NULL_VALUE, KIND_NOT_SET -> null;
      case NUMBER_VALUE -> value.getNumberValue();
      case STRING_VALUE -> value.getStringValue();
      case BOOL_VALUE -> value.getBoolValue();
      case STRUCT_VALUE -> toMap(value.getStructValue());
      case LIST_VALUE -> {
        List<Object> list = new ArrayList<>();
        for (Value item : value.getListValue().getValuesList()) {
          list.add(toJava(item));
        }
        yield Collections.unmodifiableList(list);
      }
    };
  }
}
