package embedserve

// VectorService: collections, acknowledged streaming ingestion, search,
// recommendation, get, delete and count.

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// Document is one document to write: a text for the server to embed, or a
// ready vector. Writing the same ID again overwrites the document.
type Document struct {
	ID string
	// Text is embedded by the served model (with its DOCUMENT prompt unless
	// the call's options say otherwise). A document has a Text or a Vector,
	// not both (refused with codes.InvalidArgument).
	Text string
	// Vector is stored as is; its length must be the collection's size.
	Vector []float32
	// Payload holds JSON-like values (string, float64, int, bool, nil,
	// []any, map[string]any), as structpb.NewValue accepts them. Objects and
	// arrays nest at most 32 deep (the payload's own object the first), and
	// an integer past 2**53 that a double would change is refused (send it as
	// a string), with codes.InvalidArgument. Read back by Get and Scroll, its
	// numbers are float64, or with exact payloads (WithExactPayloads, the
	// ScrollRequest's ExactPayloads) int64 for an integer an int64 holds (past
	// 2**53 too, which Upsert refuses to send) and float64 for any other.
	Payload map[string]any
}

func (d Document) proto() (*pb.Document, error) {
	if problem := utf8Problem(d.ID); problem != "" {
		return nil, status.Errorf(codes.InvalidArgument, "embedserve: document id %q %s", d.ID, problem)
	}
	if problem := utf8Problem(d.Text); problem != "" {
		return nil, status.Errorf(codes.InvalidArgument, "embedserve: document %q: text %s", d.ID, problem)
	}
	doc := &pb.Document{Id: d.ID}
	switch {
	case d.Vector != nil && d.Text != "":
		// The message holds one of them; the HTTP API and the Python client
		// refuse both rather than drop one.
		return nil, status.Errorf(codes.InvalidArgument, "embedserve: document %q takes a text or a vector, not both", d.ID)
	case d.Vector != nil:
		doc.Content = &pb.Document_Vector{Vector: &pb.Vector{Values: d.Vector}}
	default:
		doc.Content = &pb.Document_Text{Text: d.Text}
	}
	if len(d.Payload) > 0 {
		if err := payloadError(fmt.Sprintf("document %q: ", d.ID), d.Payload); err != nil {
			return nil, err
		}
		payload, err := structpb.NewStruct(d.Payload)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "embedserve: document %q: payload: %v", d.ID, err)
		}
		doc.Payload = payload
	}
	return doc, nil
}

// Hit is one search or recommendation result.
type Hit struct {
	ID    string
	Score float32
	// Payload is the stored payload (numbers come back as float64); an empty
	// map when the query asked for none (WithPayload(false)).
	Payload map[string]any
	// Vector is set when the query asked for vectors (WithVectors).
	Vector []float32
}

func hitsOf(results []*pb.ScoredDocument) []Hit {
	hits := make([]Hit, len(results))
	for i, r := range results {
		hits[i] = Hit{ID: r.GetId(), Score: r.GetScore(), Payload: payloadOf(r.GetPayload()), Vector: r.GetVector().GetValues()}
	}
	return hits
}

func payloadOf(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

// Query is what Search looks for (Text or Vector) and what Recommend takes as
// an example (ID, Text or Vector).
type Query struct {
	kind   queryKind
	text   string
	vector []float32
}

type queryKind int

const (
	queryNone queryKind = iota
	queryText
	queryVector
	queryID
)

// Text is a query text, embedded by the served model (with its QUERY prompt
// unless WithQueryEmbedding says otherwise).
func Text(text string) Query { return Query{kind: queryText, text: text} }

// Vector is a query vector of the collection's size.
func Vector(values []float32) Query { return Query{kind: queryVector, vector: values} }

// ID is a stored document, as a Recommend example.
func ID(id string) Query { return Query{kind: queryID, text: id} }

// IDs are stored documents, as Recommend examples.
func IDs(ids ...string) []Query {
	examples := make([]Query, len(ids))
	for i, id := range ids {
		examples[i] = ID(id)
	}
	return examples
}

func (q Query) example() (*pb.Example, error) {
	switch q.kind {
	case queryText:
		return &pb.Example{Example: &pb.Example_Text{Text: q.text}}, nil
	case queryVector:
		return &pb.Example{Example: &pb.Example_Vector{Vector: &pb.Vector{Values: q.vector}}}, nil
	case queryID:
		return &pb.Example{Example: &pb.Example_Id{Id: q.text}}, nil
	}
	return nil, status.Error(codes.InvalidArgument, "embedserve: empty query: use Text, Vector or ID")
}

// QueryOption configures one Search, SearchBatch, SearchGroups, Recommend or
// RecommendGroups call. Unset
// options take the server's defaults (limit 10, payload included, no vectors).
type QueryOption func(*queryConfig)

type queryConfig struct {
	params    *pb.QueryParams
	filter    *pb.Filter
	embed     *pb.EmbedOptions
	strategy  pb.RecommendStrategy
	mode      pb.SearchMode
	groupSize *uint32
	recency   *pb.Recency
	proximity *pb.Proximity
	rerank    *pb.SearchRerank
}

func newQueryConfig(opts []QueryOption) queryConfig {
	cfg := queryConfig{params: &pb.QueryParams{}}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// WithLimit sets the number of results (default 10).
func WithLimit(n uint32) QueryOption {
	return func(c *queryConfig) { c.params.Limit = &n }
}

// WithOffset skips the first n results.
func WithOffset(n uint32) QueryOption {
	return func(c *queryConfig) { c.params.Offset = n }
}

// WithScoreThreshold keeps only results scoring better than threshold (nearer, on
// euclid and manhattan collections; see QueryParams.score_threshold).
func WithScoreThreshold(threshold float32) QueryOption {
	return func(c *queryConfig) { c.params.ScoreThreshold = &threshold }
}

// WithPayload includes (default) or leaves out the payloads.
func WithPayload(include bool) QueryOption {
	return func(c *queryConfig) { c.params.WithPayload = &include }
}

// WithPayloadKeys returns only these top-level payload keys of each result
// (say, to leave out a long stored "text").
func WithPayloadKeys(keys ...string) QueryOption {
	return func(c *queryConfig) { c.params.PayloadKeys = keys }
}

// WithVectors includes the stored vectors in the results.
func WithVectors(include bool) QueryOption {
	return func(c *queryConfig) { c.params.WithVectors = include }
}

// WithExact searches by brute force instead of the HNSW index.
func WithExact(exact bool) QueryOption {
	return func(c *queryConfig) { c.params.Exact = exact }
}

// WithHNSWEf sets the search-time HNSW beam (default: the collection's).
func WithHNSWEf(ef uint32) QueryOption {
	return func(c *queryConfig) { c.params.HnswEf = &ef }
}

// WithReadConsistency sets Qdrant's read consistency ("all", "majority",
// "quorum" or a replica count; Qdrant server only).
func WithReadConsistency(consistency string) QueryOption {
	return func(c *queryConfig) { c.params.ReadConsistency = consistency }
}

// WithFilter restricts the results to documents matching filter (see Must,
// Match, ...).
func WithFilter(filter *pb.Filter) QueryOption {
	return func(c *queryConfig) { c.filter = filter }
}

// WithStrategy sets how Recommend and RecommendGroups combine their examples
// (default AVERAGE_VECTOR).
func WithStrategy(strategy pb.RecommendStrategy) QueryOption {
	return func(c *queryConfig) { c.strategy = strategy }
}

// WithDiversity re-ranks a dense Search by maximal marginal relevance, from 0
// (the order of relevance) to 1 (unlikeness to the results before alone);
// scores stay the similarities to the query.
func WithDiversity(diversity float32) QueryOption {
	return func(c *queryConfig) { c.params.Diversity = &diversity }
}

// WithDiversityCandidates sets how many of the nearest documents WithDiversity
// re-ranks (default 100, or limit + offset if more).
func WithDiversityCandidates(n uint32) QueryOption {
	return func(c *queryConfig) { c.params.DiversityCandidates = &n }
}

// WithRecency ranks fresher documents first among equally good matches in
// Search and Recommend: each of the best hits keeps (1 - weight) of its score
// and earns up to weight more by its freshness, 0.5^(age/halfLifeHours), the
// age measured from the RFC 3339 date and time at payload[key] (a dotted path
// reaches into objects; a document without one earns nothing). Hits carry the
// weighed scores. halfLifeHours is above 0; weight is above 0 and at most 1, 0
// for the server's default (0.5). Cosine and dot collections only; with
// WithDiversity, SearchGroups or RecommendGroups it is refused
// (INVALID_ARGUMENT).
func WithRecency(key string, halfLifeHours, weight float64) QueryOption {
	return func(c *queryConfig) {
		r := c.recencyParams()
		r.Key, r.HalfLifeHours, r.Weight = key, halfLifeHours, nil
		if weight != 0 {
			r.Weight = &weight
		}
	}
}

// WithRecencyNow sets the time WithRecency measures ages from (RFC 3339;
// default the server's clock when the query runs), say for reproducible
// rankings.
func WithRecencyNow(now string) QueryOption {
	return func(c *queryConfig) { c.recencyParams().Now = now }
}

// WithRecencyCandidates sets how many of the best hits WithRecency weighs
// (default 100, or limit + offset if more; at most 10000).
func WithRecencyCandidates(n uint32) QueryOption {
	return func(c *queryConfig) { c.recencyParams().Candidates = &n }
}

// recencyParams is the call's recency weighing, started by whichever recency
// option comes first.
func (c *queryConfig) recencyParams() *pb.Recency {
	if c.recency == nil {
		c.recency = &pb.Recency{}
	}
	return c.recency
}

// WithProximity ranks nearer documents first among equally good matches in
// Search and Recommend: each of the best hits keeps (1 - weight) of its score
// and earns up to weight more by its closeness, 0.5^(distance/halfDistanceM),
// the distance in metres from lat, lon (in degrees) to the place at
// payload[key] (a {"lat": ..., "lon": ...} object, the nearest of a list of
// them; a dotted path reaches into objects; a document without one earns
// nothing). Hits carry the weighed scores; with WithRecency too, freshness and
// closeness multiply. halfDistanceM is above 0; weight is above 0 and at most
// 1, 0 for the server's default (0.5). Cosine and dot collections only; with
// WithDiversity, SearchGroups or RecommendGroups it is refused
// (INVALID_ARGUMENT).
func WithProximity(key string, lat, lon, halfDistanceM, weight float64) QueryOption {
	return func(c *queryConfig) {
		p := c.proximityParams()
		p.Key, p.Center, p.HalfDistanceM, p.Weight = key, &pb.GeoPoint{Lat: lat, Lon: lon}, halfDistanceM, nil
		if weight != 0 {
			p.Weight = &weight
		}
	}
}

// WithProximityCandidates sets how many of the best hits WithProximity weighs
// (default 100, or limit + offset if more; at most 10000).
func WithProximityCandidates(n uint32) QueryOption {
	return func(c *queryConfig) { c.proximityParams().Candidates = &n }
}

// proximityParams is the call's proximity weighing, started by whichever
// proximity option comes first.
func (c *queryConfig) proximityParams() *pb.Proximity {
	if c.proximity == nil {
		c.proximity = &pb.Proximity{}
	}
	return c.proximity
}

// WithRerank reorders the best candidates hits of a Search or SearchBatch by
// a text query (dense, keyword or hybrid) with the server's reranker (its
// --reranker), which reads the query text together with each hit's text,
// payload["text"] where WithStoreText keeps it (WithRerankTextKey names
// another field). Hits carry the reranker's scores, best first, in windows
// of candidates (the first stage's best candidates among themselves, then the
// next, equal scores by id); WithLimit and WithOffset cut the page from that
// order, so pages of one limit fit together, and WithScoreThreshold applies to
// the first stage. candidates is 0 for the server's default (50, or the limit
// if more), else from the limit to 1000; in SearchGroups the groups come from
// the reranker's order. A Vector
// query, WithDiversity, WithRecency and WithProximity are refused
// (INVALID_ARGUMENT); a hit without text, or a server
// without a reranker, is FAILED_PRECONDITION. Recommend and RecommendGroups
// take no rerank: with it they fail before calling (INVALID_ARGUMENT).
func WithRerank(candidates uint32) QueryOption {
	return func(c *queryConfig) {
		r := c.rerankParams()
		r.Candidates = nil
		if candidates != 0 {
			r.Candidates = &candidates
		}
	}
}

// WithRerankTextKey sets the payload field WithRerank reads each hit's text
// from (default "text"; a dotted path reaches into objects); alone, it reranks
// as WithRerank(0) does.
func WithRerankTextKey(key string) QueryOption {
	return func(c *queryConfig) { c.rerankParams().TextKey = key }
}

// rerankParams is the call's rerank stage, started by whichever rerank option
// comes first.
func (c *queryConfig) rerankParams() *pb.SearchRerank {
	if c.rerank == nil {
		c.rerank = &pb.SearchRerank{}
	}
	return c.rerank
}

// WithKeywordWeight sets how much the keyword ranking counts against the dense
// one in a hybrid Search (default 1): keyword rank r scores as dense rank
// (r+1)/weight - 1 would.
func WithKeywordWeight(weight float32) QueryOption {
	return func(c *queryConfig) { c.params.KeywordWeight = &weight }
}

// WithOversampling sets, for a collection with quantization, how many times
// limit + offset candidates the search reads by the quantized vectors before
// scoring them again with the float vectors (1 to 100; default 3 under BINARY,
// 1 under SCALAR_INT8). A collection without quantization refuses it.
func WithOversampling(factor float32) QueryOption {
	return func(c *queryConfig) { c.params.Oversampling = &factor }
}

// WithSearchMode sets how Search ranks a text query: SEARCH_MODE_KEYWORD by
// BM25, SEARCH_MODE_HYBRID by both rankings fused (collections created
// WithBM25); default SEARCH_MODE_DENSE.
func WithSearchMode(mode pb.SearchMode) QueryOption {
	return func(c *queryConfig) { c.mode = mode }
}

// WithGroupSize sets the most hits per group of SearchGroups and
// RecommendGroups, from 1 to 100 (default 3); other calls ignore it.
func WithGroupSize(n uint32) QueryOption {
	return func(c *queryConfig) { c.groupSize = &n }
}

// WithQueryEmbedding sets the embedding options of text queries and text
// examples (the task defaults to the model's QUERY prompt).
func WithQueryEmbedding(opts ...EmbedOption) QueryOption {
	return func(c *queryConfig) { c.embed = newCallConfig(opts).options }
}

// Must is a filter that every condition must match.
func Must(conditions ...*pb.Condition) *pb.Filter { return &pb.Filter{Must: conditions} }

// Should is a filter that at least one condition must match.
func Should(conditions ...*pb.Condition) *pb.Filter { return &pb.Filter{Should: conditions} }

// MustNot is a filter that no condition may match.
func MustNot(conditions ...*pb.Condition) *pb.Filter { return &pb.Filter{MustNot: conditions} }

// Match is the condition payload[key] == value.
func Match(key, value string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_Match{Match: &pb.MatchValue{Key: key, Value: &pb.MatchValue_Text{Text: value}}}}
}

// MatchInt is the condition payload[key] == value for an integer.
func MatchInt(key string, value int64) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_Match{Match: &pb.MatchValue{Key: key, Value: &pb.MatchValue_Integer{Integer: value}}}}
}

// MatchBool is the condition payload[key] == value for a boolean.
func MatchBool(key string, value bool) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_Match{Match: &pb.MatchValue{Key: key, Value: &pb.MatchValue_Boolean{Boolean: value}}}}
}

// MatchAny is the condition that payload[key] is one of values.
func MatchAny(key string, values ...string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_MatchAny{MatchAny: &pb.MatchAny{Key: key, Texts: values}}}
}

// MatchText is the condition that the text at payload[key] holds every word
// of text, in any order (lowercased, not stemmed); the field needs a text
// payload index (WithPayloadIndex with PAYLOAD_INDEX_KIND_TEXT).
func MatchText(key, text string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_MatchText{MatchText: &pb.MatchText{Key: key, Text: text}}}
}

// MatchExcept is the condition that payload[key] is none of values (of a
// list, that one item at least is none of them). A key with no value
// (missing, null or an empty list) does not match: add IsEmpty(key) in a
// Should for those. Values are texts; MatchExceptInts takes integers.
func MatchExcept(key string, values ...string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_MatchExcept{MatchExcept: &pb.MatchExcept{Key: key, Texts: values}}}
}

// MatchExceptInts is MatchExcept for integers: payload[key] is none of values
// (of a list, one item at least); a missing key does not match.
func MatchExceptInts(key string, values ...int64) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_MatchExcept{MatchExcept: &pb.MatchExcept{Key: key, Integers: values}}}
}

// MatchTextAny is the condition that the text at payload[key] holds at least
// one of the words of text, read as MatchText reads them (lowercased, not
// stemmed); like MatchText, the field needs a text payload index
// (WithPayloadIndex with PAYLOAD_INDEX_KIND_TEXT).
func MatchTextAny(key, text string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_MatchTextAny{MatchTextAny: &pb.MatchTextAny{Key: key, Text: text}}}
}

// DatetimeRange is the condition gte <= payload[key] < lt on a date and time;
// "" leaves that side open (at least one must be set). Bounds and stored
// values are RFC 3339 ("2026-12-01T10:00:00Z", "2026-12-01T12:00:00+02:00"),
// a date ("2026-12-01", midnight UTC) or a time without an offset, read as
// UTC; a datetime payload index (WithPayloadIndex with
// PAYLOAD_INDEX_KIND_DATETIME) makes it fast on large collections.
func DatetimeRange(key, gte, lt string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_DatetimeRange{DatetimeRange: &pb.DatetimeRange{Key: key, Gte: gte, Lt: lt}}}
}

// GeoRadius is the condition that the place at payload[key] (a {"lat": ...,
// "lon": ...} object, or a list of them) lies within radiusM metres (above 0)
// of lat, lon, in degrees; a geo payload index (WithPayloadIndex with
// PAYLOAD_INDEX_KIND_GEO) makes it fast on large collections.
func GeoRadius(key string, lat, lon, radiusM float64) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_GeoRadius{GeoRadius: &pb.GeoRadius{
		Key: key, Center: &pb.GeoPoint{Lat: lat, Lon: lon}, RadiusM: radiusM}}}
}

// GeoBox is the condition that the place at payload[key] (a {"lat": ...,
// "lon": ...} object, or a list of them) lies within the box from northLat,
// westLon (its north-west corner) to southLat, eastLon (its south-east one),
// in degrees; northLat is at least southLat. A geo payload index
// (WithPayloadIndex with PAYLOAD_INDEX_KIND_GEO) makes it fast on large
// collections.
func GeoBox(key string, northLat, westLon, southLat, eastLon float64) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_GeoBoundingBox{GeoBoundingBox: &pb.GeoBoundingBox{
		Key:         key,
		TopLeft:     &pb.GeoPoint{Lat: northLat, Lon: westLon},
		BottomRight: &pb.GeoPoint{Lat: southLat, Lon: eastLon},
	}}}
}

// Place is the point at lat, lon, in degrees, a corner for GeoPolygon.
func Place(lat, lon float64) *pb.GeoPoint { return &pb.GeoPoint{Lat: lat, Lon: lon} }

// GeoPolygon is the condition that the place at payload[key] (a {"lat": ...,
// "lon": ...} object, or a list of them) lies within the polygon whose ring
// is exterior and outside each of holes, rings of corners in order (Place).
// A ring is closed for you (its first corner repeated at its end) when it is
// not already; each needs 3 or more different corners, else the server
// refuses the condition (INVALID_ARGUMENT). A geo payload index
// (WithPayloadIndex with PAYLOAD_INDEX_KIND_GEO) makes it fast on large
// collections.
func GeoPolygon(key string, exterior []*pb.GeoPoint, holes ...[]*pb.GeoPoint) *pb.Condition {
	polygon := &pb.GeoPolygon{Key: key, Exterior: &pb.GeoRing{Corners: exterior}}
	for _, hole := range holes {
		polygon.Interiors = append(polygon.Interiors, &pb.GeoRing{Corners: hole})
	}
	return &pb.Condition{Condition: &pb.Condition_GeoPolygon{GeoPolygon: polygon}}
}

// IsEmpty is the condition that payload[key] holds no value: missing, null or
// an empty list.
func IsEmpty(key string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_IsEmpty{IsEmpty: &pb.IsEmpty{Key: key}}}
}

// HasID is the condition that the document's id is one of ids.
func HasID(ids ...string) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_HasId{HasId: &pb.HasId{Ids: ids}}}
}

// Nested turns a filter into a condition, to combine filters.
func Nested(filter *pb.Filter) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_Filter{Filter: filter}}
}

// AnyObject is the condition that payload[key] is a list of objects and one
// of them, alone, matches filter, whose keys are read inside each object
// ("by", not "reviews[].by"): AnyObject("reviews", Must(Match("by", "ana"),
// ...)) needs ana's review itself to meet the other conditions, where
// conditions on "reviews[].by" and "reviews[].stars" outside it may be met by
// two different objects. HasID inside filter is refused (INVALID_ARGUMENT).
// (Nested, unlike AnyObject, only turns a filter into a condition.)
func AnyObject(key string, filter *pb.Filter) *pb.Condition {
	return &pb.Condition{Condition: &pb.Condition_Nested{Nested: &pb.Nested{Key: key, Filter: filter}}}
}

// ValuesCount is the condition gte <= n <= lte on the number n of values at
// payload[key]: a list's length, 1 for a single value, 0 when the key is
// missing, null or an empty list. A negative bound leaves that side open; at
// least one must be 0 or more, as the server refuses a condition without
// bounds (INVALID_ARGUMENT).
func ValuesCount(key string, gte, lte int) *pb.Condition {
	count := &pb.ValuesCount{Key: key}
	if gte >= 0 {
		count.Gte = proto.Uint32(count32(gte))
	}
	if lte >= 0 {
		count.Lte = proto.Uint32(count32(lte))
	}
	return &pb.Condition{Condition: &pb.Condition_ValuesCount{ValuesCount: count}}
}

// AtLeast is a filter that at least n of conditions must match, n from 1 to
// their number (the server refuses others, INVALID_ARGUMENT). To require it
// together with other conditions, set its MinShould on their filter:
//
//	f := Must(Match("lang", "en"))
//	f.MinShould = AtLeast(2, Match("tags", "vegan"), Match("tags", "quick"), IsEmpty("reviews")).MinShould
func AtLeast(n int, conditions ...*pb.Condition) *pb.Filter {
	return &pb.Filter{MinShould: &pb.MinShould{Conditions: conditions, MinCount: count32(n)}}
}

// count32 is n as a proto count: 0 below 0, math.MaxUint32 above it.
func count32(n int) uint32 {
	return uint32(min(max(int64(n), 0), math.MaxUint32))
}

// CollectionOption configures CreateCollection. Unset settings take the
// server's defaults (the model's width, the distance matching its similarity
// function, ...).
type CollectionOption func(*pb.CollectionConfig)

// WithCollectionConfig starts from a full configuration (the options after
// it change a copy).
func WithCollectionConfig(config *pb.CollectionConfig) CollectionOption {
	return func(c *pb.CollectionConfig) { proto.Merge(c, config) }
}

// WithVectorSize stores vectors of n dimensions (smaller than the model's
// width: Matryoshka-truncated vectors).
func WithVectorSize(n uint32) CollectionOption {
	return func(c *pb.CollectionConfig) { c.Dimensions = &n }
}

// WithDistance sets the distance (default: the one matching the model's
// similarity function, ModelInfo's Similarity; COSINE for most models).
func WithDistance(distance pb.Distance) CollectionOption {
	return func(c *pb.CollectionConfig) { c.Distance = distance }
}

// WithPayloadIndex indexes a payload field, for fast filtering.
func WithPayloadIndex(key string, kind pb.PayloadIndexKind) CollectionOption {
	return func(c *pb.CollectionConfig) {
		if c.PayloadIndexes == nil {
			c.PayloadIndexes = map[string]pb.PayloadIndexKind{}
		}
		c.PayloadIndexes[key] = kind
	}
}

// WithBM25 also keeps a BM25 keyword vector of each text, for keyword and
// hybrid search (WithSearchMode).
func WithBM25() CollectionOption {
	return func(c *pb.CollectionConfig) { c.Bm25 = true }
}

// CreateCollection creates a collection and returns its settings; an existing
// name is the server's error (ALREADY_EXISTS).
func (c *Client) CreateCollection(ctx context.Context, name string, opts ...CollectionOption) (*pb.CollectionInfo, error) {
	config := &pb.CollectionConfig{}
	for _, opt := range opts {
		opt(config)
	}
	resp, err := c.vectors.CreateCollection(ctx, &pb.CreateCollectionRequest{Name: name, Config: config})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// ListCollections returns the names of all collections.
func (c *Client) ListCollections(ctx context.Context) ([]string, error) {
	resp, err := c.vectors.ListCollections(ctx, &pb.ListCollectionsRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetNames(), nil
}

// GetCollection returns a collection's settings, point count, aliases and the
// model that created it (ModelId, ModelFingerprint), NOT_FOUND when missing;
// given an alias, it answers with the collection's own name.
func (c *Client) GetCollection(ctx context.Context, name string) (*pb.CollectionInfo, error) {
	resp, err := c.vectors.GetCollection(ctx, &pb.GetCollectionRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// UpdateCollectionOption is one change UpdateCollection makes: an index added
// or dropped, or the default search beam.
type UpdateCollectionOption func(*pb.UpdateCollectionRequest)

// AddPayloadIndex indexes a payload field of a collection, documents already
// stored included; a field indexed as another kind is indexed again as kind.
func AddPayloadIndex(key string, kind pb.PayloadIndexKind) UpdateCollectionOption {
	return func(r *pb.UpdateCollectionRequest) {
		if r.AddPayloadIndexes == nil {
			r.AddPayloadIndexes = map[string]pb.PayloadIndexKind{}
		}
		r.AddPayloadIndexes[key] = kind
	}
}

// DropPayloadIndex removes the payload indexes of keys; each must exist.
func DropPayloadIndex(keys ...string) UpdateCollectionOption {
	return func(r *pb.UpdateCollectionRequest) { r.DropPayloadIndexes = append(r.DropPayloadIndexes, keys...) }
}

// WithDefaultHNSWEf sets the HNSW beam of the searches that do not set one
// (WithHNSWEf).
func WithDefaultHNSWEf(ef uint32) UpdateCollectionOption {
	return func(r *pb.UpdateCollectionRequest) { r.HnswEf = &ef }
}

// UpdateCollection changes what needs no new vectors (payload indexes, the
// default search beam) and returns the collection's settings; nothing is
// embedded again. The server's errors: a missing collection is NOT_FOUND; an
// index to drop that does not exist, a field both added and dropped, or no
// change at all, INVALID_ARGUMENT.
func (c *Client) UpdateCollection(ctx context.Context, name string, opts ...UpdateCollectionOption) (*pb.CollectionInfo, error) {
	request := &pb.UpdateCollectionRequest{Name: name}
	for _, opt := range opts {
		opt(request)
	}
	resp, err := c.vectors.UpdateCollection(ctx, request)
	if err != nil {
		return nil, err
	}
	return resp.GetCollection(), nil
}

// DeleteCollection deletes a collection, its documents and its aliases. An
// alias's name is refused (FAILED_PRECONDITION): delete the alias, or the
// collection it names.
func (c *Client) DeleteCollection(ctx context.Context, name string) error {
	_, err := c.vectors.DeleteCollection(ctx, &pb.DeleteCollectionRequest{Name: name})
	return err
}

// UpdateAliases points each alias of set at its collection (new, or moved)
// and deletes the aliases in remove. Every call that names a collection also
// takes an alias of it, so readers keep one name while the collection behind
// it is rebuilt and swapped; the whole change is checked before any of it is
// made, so a swap never half happens. The server's errors: an alias named
// like a collection is ALREADY_EXISTS; a missing collection, or an alias to
// remove that does not exist, NOT_FOUND; a target that is itself an alias,
// an invalid name or an empty change, INVALID_ARGUMENT.
func (c *Client) UpdateAliases(ctx context.Context, set map[string]string, remove []string) error {
	_, err := c.vectors.UpdateAliases(ctx, &pb.UpdateAliasesRequest{Set: set, Delete: remove})
	return err
}

// ListAliases returns the aliases of collection (its name or one of its
// aliases), or every alias when collection is "". It keeps the server's list,
// sorted by alias, rather than a map, which would lose that order.
func (c *Client) ListAliases(ctx context.Context, collection string) ([]*pb.Alias, error) {
	resp, err := c.vectors.ListAliases(ctx, &pb.ListAliasesRequest{Collection: collection})
	if err != nil {
		return nil, err
	}
	return resp.GetAliases(), nil
}

// Upsert writes documents in one call and returns once they are durable.
// It returns the number of points written: one per document, or one per
// passage with WithSplit or WithSplitTokens. Options: the embedding options
// for text documents, WithStoreText and WithSplit/WithSplitTokens.
func (c *Client) Upsert(ctx context.Context, collection string, documents []Document, opts ...EmbedOption) (uint64, error) {
	cfg := newCallConfig(opts)
	if cfg.err != nil {
		return 0, cfg.err
	}
	docs := make([]*pb.Document, len(documents))
	for i, d := range documents {
		doc, err := d.proto()
		if err != nil {
			return 0, err
		}
		docs[i] = doc
	}
	resp, err := c.vectors.Upsert(ctx, &pb.UpsertRequest{Collection: collection, Documents: docs, Options: cfg.writeOptions()})
	if err != nil {
		return 0, err
	}
	return resp.GetUpserted(), nil
}

// Ack acknowledges one message sent by Ingest: its documents are durable.
type Ack struct {
	// Index is the message's position (0, 1, 2, ...); its batch_id is Index
	// in decimal.
	Index int
	// IDs are the ids of the message's documents, in order.
	IDs []string
	// TotalAcknowledged counts the documents acknowledged on this stream so far.
	TotalAcknowledged uint64
	// Response is the server's message.
	Response *pb.IngestStreamResponse
}

// Ingest streams documents into a collection over one bidirectional
// IngestStream call. Documents are cut into messages of WithBatchSize
// documents (default DefaultIngestBatchSize); at most WithMaxInFlight messages
// (default DefaultIngestMaxInFlight) await their acknowledgement, so a slow
// server slows the producer down. Each acknowledgement is yielded in order,
// once the server has made its documents durable; its batch_id and ids are
// checked against what was sent.
//
// Iteration stops at the first error, which is yielded once: the server's
// gRPC status error (NOT_FOUND for a missing collection, UNAVAILABLE when the
// server or the vector store cannot be reached, ...). Documents of messages
// not acknowledged by then may or may not have been written; ingesting them
// again is safe (the same id overwrites). Breaking out of the loop cancels
// the call.
//
// documents is consumed on another goroutine: any iter.Seq[Document], such as
// slices.Values(docs) or FromChannel(ch). The stream has no default
// deadline: bound it with ctx, which ends the iteration with its status
// (codes.DeadlineExceeded or codes.Canceled) even while documents waits for
// its next document, as does the server's failure. A producer blocked in its
// own code then keeps that goroutine until it yields (its yield returns
// false) or returns: close a FromChannel channel to release it at once.
//
// Embedding options apply to text documents; WithStoreText keeps their text
// in the payload; WithSplit or WithSplitTokens stores them as passages (the
// acknowledgements still name the documents).
func (c *Client) Ingest(ctx context.Context, collection string, documents iter.Seq[Document], opts ...EmbedOption) iter.Seq2[Ack, error] {
	cfg := newCallConfigWith(DefaultIngestBatchSize, DefaultIngestMaxInFlight, opts)
	if cfg.err != nil {
		return func(yield func(Ack, error) bool) { yield(Ack{}, cfg.err) }
	}
	write := cfg.writeOptions()
	stream := orderedStream[[]*pb.Document, pb.IngestStreamRequest, pb.IngestStreamResponse, Ack]{
		batches:     documentBatches(documents, cfg.batchSize),
		maxInFlight: cfg.maxInFlight,
		request: func(index int, id string, batch []*pb.Document) *pb.IngestStreamRequest {
			request := &pb.IngestStreamRequest{BatchId: id, Documents: batch, Options: write}
			if index == 0 {
				request.Collection = collection
			}
			return request
		},
		answerID: (*pb.IngestStreamResponse).GetBatchId,
		result: func(index int, id string, batch []*pb.Document, resp *pb.IngestStreamResponse) (Ack, error) {
			ids := make([]string, len(batch))
			for i, doc := range batch {
				ids[i] = doc.GetId()
			}
			if !slices.Equal(resp.GetIds(), ids) {
				return Ack{}, fmt.Errorf("embedserve: batch %s: acknowledged %d ids that differ from the %d sent", id, len(resp.GetIds()), len(ids))
			}
			return Ack{Index: index, IDs: resp.GetIds(), TotalAcknowledged: resp.GetTotalAcknowledged(), Response: resp}, nil
		},
		name: "ingest stream", idField: "batch_id", answerOf: "the acknowledgement of batch", strayAnswer: "an acknowledgement of no batch",
	}
	return stream.run(ctx, func(ctx context.Context) (grpc.BidiStreamingClient[pb.IngestStreamRequest, pb.IngestStreamResponse], error) {
		return c.vectors.IngestStream(ctx)
	})
}

// documentBatches cuts documents into messages of size; a document that
// cannot be sent (a payload structpb rejects) ends the sequence with its error.
func documentBatches(documents iter.Seq[Document], size int) iter.Seq2[[]*pb.Document, error] {
	return func(yield func([]*pb.Document, error) bool) {
		batch := make([]*pb.Document, 0, size)
		for d := range documents {
			doc, err := d.proto()
			if err != nil {
				yield(nil, err)
				return
			}
			if batch = append(batch, doc); len(batch) == size {
				if !yield(batch, nil) {
					return
				}
				batch = make([]*pb.Document, 0, size)
			}
		}
		if len(batch) > 0 {
			yield(batch, nil)
		}
	}
}

// FromChannel adapts a channel to the sequences Ingest and EmbedStream take;
// the sequence ends when the channel is closed.
func FromChannel[T any](ch <-chan T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for v := range ch {
			if !yield(v) {
				return
			}
		}
	}
}

// Search returns the documents nearest to query (Text or Vector), best first;
// WithSearchMode ranks a Text query by keywords or by both, WithRerank reorders
// the best hits of a Text query with the server's reranker.
func (c *Client) Search(ctx context.Context, collection string, query Query, opts ...QueryOption) ([]Hit, error) {
	request, err := searchRequest(collection, query, newQueryConfig(opts))
	if err != nil {
		return nil, err
	}
	resp, err := c.vectors.Search(ctx, request)
	if err != nil {
		return nil, err
	}
	return hitsOf(resp.GetResults()), nil
}

// HitGroup is the best hits, best first, sharing one value of the payload
// field SearchGroups or RecommendGroups groups by.
type HitGroup struct {
	// Key is the field's value: a string or an int64.
	Key  any
	Hits []Hit
}

// SearchGroups is Search grouped by the payload field groupBy (a dotted path
// reaches into objects), which holds a string or an integer, or a list of
// them (a hit joins each value's group); hits without one are left out. It
// returns the groups, ranked by their best hit, each with its best hits
// (WithGroupSize, default 3); WithLimit counts groups; with WithRerank, the
// groups come from the reranked candidates. WithOffset, WithDiversity,
// WithRecency and WithProximity are refused (INVALID_ARGUMENT).
func (c *Client) SearchGroups(ctx context.Context, collection string, query Query, groupBy string, opts ...QueryOption) ([]HitGroup, error) {
	cfg := newQueryConfig(opts)
	request, err := searchRequest(collection, query, cfg)
	if err != nil {
		return nil, err
	}
	request.GroupBy = &pb.GroupBy{Key: groupBy, Size: cfg.groupSize}
	resp, err := c.vectors.Search(ctx, request)
	if err != nil {
		return nil, err
	}
	return groupsOf(resp.GetGroups()), nil
}

// groupsOf converts the groups of a grouped search or recommendation.
func groupsOf(pbGroups []*pb.HitGroup) []HitGroup {
	groups := make([]HitGroup, len(pbGroups))
	for i, g := range pbGroups {
		groups[i] = HitGroup{Hits: hitsOf(g.GetHits())}
		switch key := g.GetKey().(type) {
		case *pb.HitGroup_Text:
			groups[i].Key = key.Text
		case *pb.HitGroup_Integer:
			groups[i].Key = key.Integer
		}
	}
	return groups
}

// SearchBatch runs one Search per query, all with the same options, in one
// call (their texts are embedded together); it returns the hits of each, in
// order. The first search that fails fails the call, its index named.
func (c *Client) SearchBatch(ctx context.Context, collection string, queries []Query, opts ...QueryOption) ([][]Hit, error) {
	cfg := newQueryConfig(opts)
	batch := &pb.SearchBatchRequest{Collection: collection}
	for _, query := range queries {
		request, err := searchRequest("", query, cfg)
		if err != nil {
			return nil, err
		}
		batch.Searches = append(batch.Searches, request)
	}
	resp, err := c.vectors.SearchBatch(ctx, batch)
	if err != nil {
		return nil, err
	}
	hits := make([][]Hit, len(resp.GetResponses()))
	for i, r := range resp.GetResponses() {
		hits[i] = hitsOf(r.GetResults())
	}
	return hits, nil
}

func searchRequest(collection string, query Query, cfg queryConfig) (*pb.SearchRequest, error) {
	request := &pb.SearchRequest{Collection: collection, Filter: cfg.filter, Params: cfg.params, Embed: cfg.embed, Mode: cfg.mode, Recency: cfg.recency, Proximity: cfg.proximity, Rerank: cfg.rerank}
	switch query.kind {
	case queryText:
		request.Query = &pb.SearchRequest_Text{Text: query.text}
	case queryVector:
		request.Query = &pb.SearchRequest_Vector{Vector: &pb.Vector{Values: query.vector}}
	case queryID:
		return nil, status.Error(codes.InvalidArgument, "embedserve: Search takes a Text or Vector query; use Recommend with stored ids")
	default:
		return nil, status.Error(codes.InvalidArgument, "embedserve: empty query: use Text or Vector")
	}
	return request, nil
}

// Recommend returns documents like the positive examples and unlike the
// negative ones (ID, Text or Vector each), best first. Stored examples never
// come back as results. WithStrategy picks how examples are combined.
func (c *Client) Recommend(ctx context.Context, collection string, positive, negative []Query, opts ...QueryOption) ([]Hit, error) {
	request, err := recommendRequest(collection, positive, negative, newQueryConfig(opts))
	if err != nil {
		return nil, err
	}
	resp, err := c.vectors.Recommend(ctx, request)
	if err != nil {
		return nil, err
	}
	return hitsOf(resp.GetResults()), nil
}

// RecommendGroups is Recommend grouped by the payload field groupBy, as
// SearchGroups groups a search: it returns the groups, ranked by their best
// hit, each with its best hits (WithGroupSize, default 3); WithLimit counts
// groups. Stored examples never come back. WithOffset, WithDiversity,
// WithRecency, WithProximity and WithRerank are refused (INVALID_ARGUMENT).
func (c *Client) RecommendGroups(ctx context.Context, collection string, positive, negative []Query, groupBy string, opts ...QueryOption) ([]HitGroup, error) {
	cfg := newQueryConfig(opts)
	request, err := recommendRequest(collection, positive, negative, cfg)
	if err != nil {
		return nil, err
	}
	request.GroupBy = &pb.GroupBy{Key: groupBy, Size: cfg.groupSize}
	resp, err := c.vectors.Recommend(ctx, request)
	if err != nil {
		return nil, err
	}
	return groupsOf(resp.GetGroups()), nil
}

func recommendRequest(collection string, positive, negative []Query, cfg queryConfig) (*pb.RecommendRequest, error) {
	if cfg.rerank != nil {
		return nil, status.Error(codes.InvalidArgument, "embedserve: WithRerank reorders a Search; a recommendation takes no rerank")
	}
	request := &pb.RecommendRequest{Collection: collection, Strategy: cfg.strategy, Filter: cfg.filter, Params: cfg.params, Embed: cfg.embed, Recency: cfg.recency, Proximity: cfg.proximity}
	for _, q := range positive {
		example, err := q.example()
		if err != nil {
			return nil, err
		}
		request.Positive = append(request.Positive, example)
	}
	for _, q := range negative {
		example, err := q.example()
		if err != nil {
			return nil, err
		}
		request.Negative = append(request.Negative, example)
	}
	return request, nil
}

// Get returns the stored documents among ids, in the order asked; missing ids
// are skipped. The documents have ID, Payload and, with withVectors, Vector
// (a text kept by WithStoreText is Payload["text"]). Payload numbers come back
// as float64, or with WithExactPayloads exactly: integers as int64 (past 2**53
// too), other numbers as float64.
func (c *Client) Get(ctx context.Context, collection string, ids []string, withVectors bool, opts ...GetOption) ([]Document, error) {
	request := &pb.GetRequest{Collection: collection, Ids: ids, WithVectors: withVectors}
	for _, opt := range opts {
		opt(request)
	}
	resp, err := c.vectors.Get(ctx, request)
	if err != nil {
		return nil, err
	}
	return storedDocuments(resp.GetDocuments())
}

// storedDocuments are the documents Get and Scroll return: each payload read
// from its payload_json where the request asked for exact payloads (the server
// fills that instead of the Struct), else from its Struct.
func storedDocuments(stored []*pb.StoredDocument) ([]Document, error) {
	docs := make([]Document, len(stored))
	for i, d := range stored {
		payload := payloadOf(d.GetPayload())
		if text := d.GetPayloadJson(); text != "" {
			var err error
			if payload, err = payloadFromJSON(text); err != nil {
				return nil, status.Errorf(codes.Internal, "embedserve: document %q: payload_json: %v", d.GetId(), err)
			}
		}
		docs[i] = Document{ID: d.GetId(), Payload: payload, Vector: d.GetVector().GetValues()}
	}
	return docs, nil
}

// Delete deletes the documents with the given ids, those matching filter, or
// the ids that also match filter (nil: no filter). One of them is needed.
func (c *Client) Delete(ctx context.Context, collection string, ids []string, filter *pb.Filter) error {
	_, err := c.vectors.Delete(ctx, &pb.DeleteRequest{Collection: collection, Ids: ids, Filter: filter})
	return err
}

// UpdatePayload sets the top-level keys of payload (a key set to nil is
// removed) and removes deleteKeys, vectors kept, on the documents named by ids
// (every id must exist), matching filter, or both. payload is checked as a
// Document's is.
func (c *Client) UpdatePayload(ctx context.Context, collection string, ids []string, filter *pb.Filter, payload map[string]any, deleteKeys ...string) error {
	request := &pb.UpdatePayloadRequest{Collection: collection, Ids: ids, Filter: filter, DeleteKeys: deleteKeys}
	if len(payload) > 0 {
		if err := payloadError("", payload); err != nil {
			return err
		}
		values, err := structpb.NewStruct(payload)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "embedserve: payload: %v", err)
		}
		request.Payload = values
	}
	_, err := c.vectors.UpdatePayload(ctx, request)
	return err
}

// FacetCount is a payload value (string, int64 or bool) and how many
// documents hold it.
type FacetCount struct {
	Value any
	Count uint64
}

// Facet counts the documents (matching filter; nil: all) holding each value
// of the payload field key, most frequent first, at most limit values (0: the
// server's default, 10). The field needs a keyword, integer or bool index.
func (c *Client) Facet(ctx context.Context, collection, key string, filter *pb.Filter, limit uint32) ([]FacetCount, error) {
	request := &pb.FacetRequest{Collection: collection, Key: key, Filter: filter}
	if limit > 0 {
		request.Limit = &limit
	}
	resp, err := c.vectors.Facet(ctx, request)
	if err != nil {
		return nil, err
	}
	counts := make([]FacetCount, len(resp.GetValues()))
	for i, v := range resp.GetValues() {
		counts[i] = FacetCount{Count: v.GetCount()}
		switch value := v.GetValue().(type) {
		case *pb.FacetValue_Text:
			counts[i].Value = value.Text
		case *pb.FacetValue_Integer:
			counts[i].Value = value.Integer
		case *pb.FacetValue_Boolean:
			counts[i].Value = value.Boolean
		}
	}
	return counts, nil
}

// Count returns the number of documents in a collection, or of those
// matching filter (nil: all).
func (c *Client) Count(ctx context.Context, collection string, filter *pb.Filter) (uint64, error) {
	resp, err := c.vectors.Count(ctx, &pb.CountRequest{Collection: collection, Filter: filter})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}
