package embedserve_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// topics give the generated corpus its clusters: sentences about one topic
// are built from its own words.
var topics = map[string][]string{
	"space":    {"rocket", "orbit", "galaxy", "astronaut", "telescope", "planet", "satellite", "moon"},
	"cooking":  {"recipe", "oven", "garlic", "pasta", "sauce", "bakery", "kitchen", "spices"},
	"football": {"goal", "striker", "referee", "penalty", "league", "stadium", "midfielder", "goalkeeper"},
	"finance":  {"stock", "interest rate", "bond", "inflation", "dividend", "investor", "bank", "loan"},
}

var topicNames = []string{"cooking", "finance", "football", "space"}

const perTopic = 50 // 200 documents

// corpus is perTopic short sentences per topic, ids "<topic>-<n>", payload
// {"topic": topic, "n": n}.
func corpus() []embedserve.Document {
	var docs []embedserve.Document
	for _, topic := range topicNames {
		words := topics[topic]
		for n := range perTopic {
			a, b := words[n%len(words)], words[(n/len(words)+n+1)%len(words)]
			docs = append(docs, embedserve.Document{
				ID:      fmt.Sprintf("%s-%d", topic, n),
				Text:    fmt.Sprintf("A short note about the %s and the %s, number %d.", a, b, n),
				Payload: map[string]any{"topic": topic, "n": n},
			})
		}
	}
	return docs
}

// collectionName is unique per test and run: the server may be shared.
func collectionName(t *testing.T) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("go_%s_%d_%d", name, os.Getpid(), time.Now().UnixNano())
}

// newCollection creates a collection deleted when the test ends.
func newCollection(t *testing.T, client *embedserve.Client, opts ...embedserve.CollectionOption) string {
	t.Helper()
	name := collectionName(t)
	info, err := client.CreateCollection(context.Background(), name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != name || info.GetConfig().GetDimensions() != dims {
		t.Fatalf("created %q with %d dimensions", info.GetName(), info.GetConfig().GetDimensions())
	}
	t.Cleanup(func() {
		if err := client.DeleteCollection(context.Background(), name); err != nil {
			t.Errorf("deleting %s: %v", name, err)
		}
	})
	return name
}

// ingestAll ingests docs and checks the acknowledgements: in order, one per
// batch, with the batch's ids.
func ingestAll(t *testing.T, ctx context.Context, client *embedserve.Client, collection string, docs []embedserve.Document, batchSize int) {
	t.Helper()
	var acked []string
	next := 0
	for ack, err := range client.Ingest(ctx, collection, slices.Values(docs), embedserve.WithBatchSize(batchSize), embedserve.WithMaxInFlight(4)) {
		if err != nil {
			t.Fatalf("after %d acknowledgements: %v", next, err)
		}
		if ack.Index != next || ack.Response.GetBatchId() != fmt.Sprint(next) {
			t.Fatalf("acknowledgement %d: index %d, batch_id %q", next, ack.Index, ack.Response.GetBatchId())
		}
		acked = append(acked, ack.IDs...)
		if ack.TotalAcknowledged != uint64(len(acked)) {
			t.Fatalf("acknowledgement %d: total %d, want %d", next, ack.TotalAcknowledged, len(acked))
		}
		next++
	}
	if want := (len(docs) + batchSize - 1) / batchSize; next != want {
		t.Fatalf("%d acknowledgements, want %d", next, want)
	}
	for i, doc := range docs {
		if acked[i] != doc.ID {
			t.Fatalf("acknowledged id %d is %q, want %q", i, acked[i], doc.ID)
		}
	}
}

func count(t *testing.T, client *embedserve.Client, collection string, filter *pb.Filter) uint64 {
	t.Helper()
	n, err := client.Count(context.Background(), collection, filter)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func topicOf(hit embedserve.Hit) string {
	topic, _ := hit.Payload["topic"].(string)
	return topic
}

func TestVectorScenario(t *testing.T) {
	client := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := newCollection(t, client, embedserve.WithPayloadIndex("topic", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_KEYWORD))
	docs := corpus()

	// Produced on a channel, as a slow producer would.
	ch := make(chan embedserve.Document)
	go func() {
		defer close(ch)
		for _, doc := range docs {
			ch <- doc
		}
	}()
	var acks []embedserve.Ack
	for ack, err := range client.Ingest(ctx, name, embedserve.FromChannel(ch), embedserve.WithBatchSize(32)) {
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	if len(acks) != (len(docs)+31)/32 || acks[len(acks)-1].TotalAcknowledged != uint64(len(docs)) {
		t.Fatalf("%d acknowledgements, last total %d, for %d documents", len(acks), acks[len(acks)-1].TotalAcknowledged, len(docs))
	}
	topics, err := client.Facet(ctx, name, "topic", embedserve.Must(embedserve.MatchInt("n", 3)), 2)
	if err != nil || len(topics) != 2 || topics[0].Count != 1 || topics[0].Value != "cooking" || topics[1].Value != "finance" {
		t.Fatalf("Facet of topics where n == 3: %+v, %v", topics, err)
	}
	for i, ack := range acks {
		if ack.Index != i || ack.Response.GetBatchId() != fmt.Sprint(i) || ack.IDs[0] != docs[32*i].ID {
			t.Fatalf("acknowledgement %d: index %d, batch_id %q, first id %q", i, ack.Index, ack.Response.GetBatchId(), ack.IDs[0])
		}
	}

	t.Run("count", func(t *testing.T) {
		if n := count(t, client, name, nil); n != uint64(len(docs)) {
			t.Fatalf("count = %d, want %d", n, len(docs))
		}
		if n := count(t, client, name, embedserve.Must(embedserve.Match("topic", "space"))); n != perTopic {
			t.Fatalf("count of topic space = %d, want %d", n, perTopic)
		}
		info, err := client.GetCollection(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if info.GetPointsCount() != uint64(len(docs)) {
			t.Fatalf("points_count = %d", info.GetPointsCount())
		}
		names, err := client.ListCollections(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, name) {
			t.Fatalf("%s not among %v", name, names)
		}
	})

	t.Run("search by text", func(t *testing.T) {
		queries := map[string]string{
			"space":    "astronauts travelling into orbit around a planet",
			"cooking":  "how to cook pasta with garlic sauce",
			"football": "the striker scored a penalty goal",
			"finance":  "bond yields, inflation and the stock market",
		}
		for topic, query := range queries {
			hits, err := client.Search(ctx, name, embedserve.Text(query), embedserve.WithLimit(5))
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) != 5 {
				t.Fatalf("%q: %d hits, want 5", query, len(hits))
			}
			if topicOf(hits[0]) != topic || !strings.HasPrefix(hits[0].ID, topic+"-") {
				t.Fatalf("%q: first hit %s (payload %v), want topic %s", query, hits[0].ID, hits[0].Payload, topic)
			}
			for i := 1; i < len(hits); i++ {
				if hits[i].Score > hits[i-1].Score {
					t.Fatalf("%q: hits not sorted by score: %v", query, hits)
				}
			}
		}
	})

	t.Run("search with filter", func(t *testing.T) {
		hits, err := client.Search(ctx, name, embedserve.Text("a rocket launch"),
			embedserve.WithFilter(embedserve.Must(embedserve.Match("topic", "cooking"))), embedserve.WithLimit(7))
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 7 {
			t.Fatalf("%d hits, want 7", len(hits))
		}
		for _, hit := range hits {
			if topicOf(hit) != "cooking" {
				t.Fatalf("filtered search returned %s (%v)", hit.ID, hit.Payload)
			}
		}
	})

	t.Run("search by vector", func(t *testing.T) {
		stored, err := client.Get(ctx, name, []string{"finance-7", "no-such-id", "space-3"}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != 2 || stored[0].ID != "finance-7" || stored[1].ID != "space-3" {
			t.Fatalf("Get returned %v", stored)
		}
		if len(stored[0].Vector) != dims || topicOf(embedserve.Hit{Payload: stored[0].Payload}) != "finance" {
			t.Fatalf("stored document: %d dimensions, payload %v", len(stored[0].Vector), stored[0].Payload)
		}
		hits, err := client.Search(ctx, name, embedserve.Vector(stored[0].Vector), embedserve.WithLimit(3), embedserve.WithVectors(true))
		if err != nil {
			t.Fatal(err)
		}
		if hits[0].ID != "finance-7" || hits[0].Score < 0.999 || maxAbsDiff(hits[0].Vector, stored[0].Vector) > 1e-6 {
			t.Fatalf("nearest to finance-7's own vector: %s (score %f)", hits[0].ID, hits[0].Score)
		}
		if _, err := client.Search(ctx, name, embedserve.ID("finance-7")); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("search by id: %v, want InvalidArgument", err)
		}
	})

	t.Run("recommend", func(t *testing.T) {
		positive := embedserve.IDs("space-1", "space-2", "space-3")
		negative := embedserve.IDs("cooking-1")
		examples := []string{"space-1", "space-2", "space-3", "cooking-1"}
		for _, strategy := range []pb.RecommendStrategy{
			pb.RecommendStrategy_RECOMMEND_STRATEGY_UNSPECIFIED,
			pb.RecommendStrategy_RECOMMEND_STRATEGY_BEST_SCORE,
			pb.RecommendStrategy_RECOMMEND_STRATEGY_SUM_SCORES,
		} {
			hits, err := client.Recommend(ctx, name, positive, negative, embedserve.WithStrategy(strategy), embedserve.WithLimit(10))
			if err != nil {
				t.Fatalf("%v: %v", strategy, err)
			}
			if len(hits) != 10 {
				t.Fatalf("%v: %d hits, want 10", strategy, len(hits))
			}
			for _, hit := range hits {
				if slices.Contains(examples, hit.ID) {
					t.Fatalf("%v: example %s came back", strategy, hit.ID)
				}
			}
			if topicOf(hits[0]) != "space" {
				t.Fatalf("%v: first recommendation %s (%v), want topic space", strategy, hits[0].ID, hits[0].Payload)
			}
		}
		// Text examples and a filter.
		hits, err := client.Recommend(ctx, name, []embedserve.Query{embedserve.Text("a goalkeeper in the stadium")}, nil,
			embedserve.WithFilter(embedserve.MustNot(embedserve.HasID("football-0"))), embedserve.WithLimit(3))
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 3 || topicOf(hits[0]) != "football" || hits[0].ID == "football-0" {
			t.Fatalf("text recommendation: %v", hits)
		}
	})

	t.Run("re-ingest keeps the count", func(t *testing.T) {
		ingestAll(t, ctx, client, name, docs, 50)
		if n := count(t, client, name, nil); n != uint64(len(docs)) {
			t.Fatalf("count after re-ingesting = %d, want %d", n, len(docs))
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := client.Delete(ctx, name, []string{"space-1", "space-2"}, nil); err != nil {
			t.Fatal(err)
		}
		if n := count(t, client, name, nil); n != uint64(len(docs)-2) {
			t.Fatalf("count after deleting 2 = %d, want %d", n, len(docs)-2)
		}
		if err := client.Delete(ctx, name, nil, embedserve.Must(embedserve.Match("topic", "finance"))); err != nil {
			t.Fatal(err)
		}
		if n := count(t, client, name, nil); n != uint64(len(docs)-2-perTopic) {
			t.Fatalf("count after deleting topic finance = %d", n)
		}
	})
}

// aliasPairs writes aliases as "alias=collection", to compare them at once.
func aliasPairs(aliases []*pb.Alias) []string {
	pairs := make([]string, len(aliases))
	for i, a := range aliases {
		pairs[i] = a.GetAlias() + "=" + a.GetCollection()
	}
	return pairs
}

func listAliases(t *testing.T, client *embedserve.Client, collection string) []string {
	t.Helper()
	aliases, err := client.ListAliases(context.Background(), collection)
	if err != nil {
		t.Fatal(err)
	}
	return aliasPairs(aliases)
}

func TestAliases(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	first, second := newCollection(t, client), newCollection(t, client)
	alias := collectionName(t) + "_alias"
	if n, err := client.Upsert(ctx, first, corpus()[:3]); err != nil || n != 3 {
		t.Fatalf("upserted %d: %v", n, err)
	}

	if err := client.UpdateAliases(ctx, map[string]string{alias: first}, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, client, alias, nil); n != 3 {
		t.Fatalf("count through the alias = %d, want 3", n)
	}
	hits, err := client.Search(ctx, alias, embedserve.Text("a recipe with garlic"), embedserve.WithLimit(1))
	if err != nil || len(hits) != 1 || topicOf(hits[0]) != "cooking" {
		t.Fatalf("search through the alias: %+v, %v", hits, err)
	}
	info, err := client.GetCollection(ctx, alias)
	if err != nil || info.GetName() != first || !slices.Equal(info.GetAliases(), []string{alias}) {
		t.Fatalf("GetCollection(alias): name %q, aliases %v, %v; want %s, [%s]", info.GetName(), info.GetAliases(), err, first, alias)
	}

	// Moved: the alias's readers reach the other collection, empty.
	if err := client.UpdateAliases(ctx, map[string]string{alias: second}, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, client, alias, nil); n != 0 {
		t.Fatalf("count through the moved alias = %d, want 0", n)
	}
	want := []string{alias + "=" + second}
	if got := listAliases(t, client, second); !slices.Equal(got, want) {
		t.Fatalf("aliases of %s: %v, want %v", second, got, want)
	}
	if got := listAliases(t, client, alias); !slices.Equal(got, want) {
		t.Fatalf("aliases of %s, by its alias: %v, want %v", second, got, want)
	}
	if got := listAliases(t, client, first); len(got) != 0 {
		t.Fatalf("aliases of %s after the move: %v", first, got)
	}
	// The server may be shared: other tests' aliases may be listed too.
	all := listAliases(t, client, "")
	if !slices.Contains(all, want[0]) || !slices.IsSorted(all) {
		t.Fatalf("all aliases: %v; want %v among them, sorted", all, want[0])
	}

	// Refused, and nothing of a refused change is made.
	if err := client.DeleteCollection(ctx, alias); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("DeleteCollection(alias): %v, want FailedPrecondition", err)
	}
	missing := collectionName(t) + "_missing"
	if err := client.UpdateAliases(ctx, map[string]string{alias: first, missing + "_alias": missing}, nil); status.Code(err) != codes.NotFound {
		t.Fatalf("alias of a missing collection: %v, want NotFound", err)
	}
	if err := client.UpdateAliases(ctx, map[string]string{first: second}, nil); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("alias named like a collection: %v, want AlreadyExists", err)
	}
	if got := listAliases(t, client, second); !slices.Equal(got, want) {
		t.Fatalf("aliases of %s after refused changes: %v, want %v", second, got, want)
	}

	if err := client.UpdateAliases(ctx, nil, []string{alias}); err != nil {
		t.Fatal(err)
	}
	if got := listAliases(t, client, second); len(got) != 0 {
		t.Fatalf("aliases of %s after deleting: %v", second, got)
	}
	if _, err := client.GetCollection(ctx, alias); status.Code(err) != codes.NotFound {
		t.Fatalf("GetCollection of a deleted alias: %v, want NotFound", err)
	}
	if err := client.UpdateAliases(ctx, nil, []string{alias}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleting a missing alias: %v, want NotFound", err)
	}
}

// facetCounts writes facet counts as "value=count", to compare them at once.
func facetCounts(counts []embedserve.FacetCount) []string {
	pairs := make([]string, len(counts))
	for i, c := range counts {
		pairs[i] = fmt.Sprintf("%v=%d", c.Value, c.Count)
	}
	return pairs
}

func TestUpdateCollection(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client)
	docs := corpus() // perTopic documents of each topic, in topicNames order
	sample := []embedserve.Document{docs[0], docs[1], docs[2], docs[perTopic], docs[2*perTopic]}
	if n, err := client.Upsert(ctx, name, sample); err != nil || n != uint64(len(sample)) {
		t.Fatalf("upserted %d: %v", n, err)
	}

	// The collection records the model that created it.
	model, err := client.ModelInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.GetCollection(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if info.GetModelFingerprint() == "" || info.GetModelFingerprint() != model.GetFingerprint() || info.GetModelId() != model.GetModelId() {
		t.Fatalf("collection's model %q (fingerprint %q), served model %q (fingerprint %q)",
			info.GetModelId(), info.GetModelFingerprint(), model.GetModelId(), model.GetFingerprint())
	}

	// Facets need an index: one added now indexes the documents already stored.
	if counts, err := client.Facet(ctx, name, "topic", nil, 0); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Facet on a field without an index: %+v, %v, want InvalidArgument", counts, err)
	}
	info, err = client.UpdateCollection(ctx, name, embedserve.AddPayloadIndex("topic", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_KEYWORD))
	if err != nil {
		t.Fatal(err)
	}
	if kinds := info.GetConfig().GetPayloadIndexes(); info.GetName() != name || len(kinds) != 1 || kinds["topic"] != pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_KEYWORD {
		t.Fatalf("UpdateCollection returned %q with payload indexes %v, want topic: KEYWORD", info.GetName(), kinds)
	}
	counts, err := client.Facet(ctx, name, "topic", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := facetCounts(counts)
	if len(got) > 1 {
		slices.Sort(got[1:]) // the topics held once tie
	}
	if want := []string{"cooking=3", "finance=1", "football=1"}; !slices.Equal(got, want) {
		t.Fatalf("facet of topics: %v, want %v", got, want)
	}

	info, err = client.UpdateCollection(ctx, name, embedserve.WithDefaultHNSWEf(48))
	if err != nil {
		t.Fatal(err)
	}
	if info.GetConfig().GetHnswEf() != 48 || info.GetPointsCount() != uint64(len(sample)) {
		t.Fatalf("after setting hnsw_ef: hnsw_ef %d, %d points; want 48, %d", info.GetConfig().GetHnswEf(), info.GetPointsCount(), len(sample))
	}
	if _, ok := info.GetConfig().GetPayloadIndexes()["topic"]; !ok {
		t.Fatalf("setting hnsw_ef lost the topic index: %v", info.GetConfig().GetPayloadIndexes())
	}

	// Refused, and nothing of a refused change is made.
	if _, err := client.UpdateCollection(ctx, name, embedserve.DropPayloadIndex("nope")); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("dropping a missing index: %v, want InvalidArgument", err)
	}
	if _, err := client.UpdateCollection(ctx, name); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an empty change: %v, want InvalidArgument", err)
	}
	both := []embedserve.UpdateCollectionOption{
		embedserve.AddPayloadIndex("n", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_INTEGER), embedserve.DropPayloadIndex("n"),
	}
	if _, err := client.UpdateCollection(ctx, name, both...); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an index both added and dropped: %v, want InvalidArgument", err)
	}
	missing := collectionName(t) + "_missing"
	if _, err := client.UpdateCollection(ctx, missing, embedserve.WithDefaultHNSWEf(8)); status.Code(err) != codes.NotFound {
		t.Fatalf("UpdateCollection of a missing collection: %v, want NotFound", err)
	}
	info, err = client.GetCollection(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if kinds := info.GetConfig().GetPayloadIndexes(); len(kinds) != 1 || info.GetConfig().GetHnswEf() != 48 {
		t.Fatalf("after refused changes: payload indexes %v, hnsw_ef %d", kinds, info.GetConfig().GetHnswEf())
	}

	// Dropped: facets are refused again.
	info, err = client.UpdateCollection(ctx, name, embedserve.DropPayloadIndex("topic"))
	if err != nil || len(info.GetConfig().GetPayloadIndexes()) != 0 {
		t.Fatalf("after dropping topic: payload indexes %v, %v", info.GetConfig().GetPayloadIndexes(), err)
	}
	if counts, err := client.Facet(ctx, name, "topic", nil, 0); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Facet after dropping the index: %+v, %v, want InvalidArgument", counts, err)
	}
}

func TestDatetimeRangeAndOrder(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims),
		embedserve.WithPayloadIndex("published", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_DATETIME))
	// In time order: nov (Nov 2, 08:00Z), midnight (Dec 1, 00:00Z), morning
	// (Dec 1, 08:30Z written with +01:00), evening (Dec 3, 18:45Z); undated has none.
	published := map[string]string{
		"nov":      "2026-11-02T08:00:00Z",
		"morning":  "2026-12-01T09:30:00+01:00",
		"midnight": "2026-12-01",
		"evening":  "2026-12-03T18:45:00Z",
	}
	var docs []embedserve.Document
	for i, id := range []string{"nov", "morning", "midnight", "evening", "undated"} {
		v := make([]float32, dims)
		v[i] = 1
		doc := embedserve.Document{ID: id, Vector: v}
		if when, ok := published[id]; ok {
			doc.Payload = map[string]any{"published": when}
		}
		docs = append(docs, doc)
	}
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}

	// [Dec 1 00:00Z, ...): midnight (the bound itself), morning and evening.
	if n := count(t, client, name, embedserve.Must(embedserve.DatetimeRange("published", "2026-12-01T00:00:00Z", ""))); n != 3 {
		t.Fatalf("published from Dec 1: %d, want 3", n)
	}
	// [..., Dec 1 08:30Z): nov and midnight; morning is 08:30Z itself, left out.
	if n := count(t, client, name, embedserve.Must(embedserve.DatetimeRange("published", "", "2026-12-01T08:30:00Z"))); n != 2 {
		t.Fatalf("published before Dec 1 08:30Z: %d, want 2", n)
	}
	// [Dec 1, Dec 3): midnight and morning.
	if n := count(t, client, name, embedserve.Must(embedserve.DatetimeRange("published", "2026-12-01", "2026-12-03"))); n != 2 {
		t.Fatalf("published Dec 1 to Dec 3: %d, want 2", n)
	}

	var newestFirst []string
	order := &pb.ScrollOrder{Key: "published", Descending: true}
	for doc, err := range client.ScrollAll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(2), OrderBy: order}) {
		if err != nil {
			t.Fatal(err)
		}
		newestFirst = append(newestFirst, doc.ID)
	}
	if want := []string{"evening", "morning", "midnight", "nov"}; !slices.Equal(newestFirst, want) {
		t.Fatalf("scrolled by published, descending: %v, want %v", newestFirst, want)
	}

	_, err := client.Count(ctx, name, embedserve.Must(embedserve.DatetimeRange("published", "yesterday", "")))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "is no date and time") {
		t.Fatalf("bound \"yesterday\": %v, want InvalidArgument saying it is no date and time", err)
	}
}

func TestGeoAndIsEmpty(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims),
		embedserve.WithPayloadIndex("at", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_GEO))
	places := map[string][2]float64{
		"mitte":   {52.5200, 13.4050},
		"alex":    {52.5219, 13.4132},
		"potsdam": {52.3906, 13.0645},
		"hamburg": {53.5511, 9.9937},
	}
	var docs []embedserve.Document
	for i, id := range []string{"mitte", "alex", "potsdam", "hamburg", "nowhere"} {
		v := make([]float32, dims)
		v[i] = 1
		doc := embedserve.Document{ID: id, Vector: v}
		if at, ok := places[id]; ok {
			doc.Payload = map[string]any{"at": map[string]any{"lat": at[0], "lon": at[1]}}
		}
		docs = append(docs, doc)
	}
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}

	// Within 2 km of Berlin Mitte: mitte itself and alex (about 600 m off).
	if n := count(t, client, name, embedserve.Must(embedserve.GeoRadius("at", 52.52, 13.405, 2000))); n != 2 {
		t.Fatalf("within 2 km of Mitte: %d, want 2", n)
	}
	// Lat 52 to 53, lon 12.5 to 14: mitte, alex and potsdam, not hamburg.
	if n := count(t, client, name, embedserve.Must(embedserve.GeoBox("at", 53.0, 12.5, 52.0, 14.0))); n != 3 {
		t.Fatalf("in the box around Berlin: %d, want 3", n)
	}
	if n := count(t, client, name, embedserve.Must(embedserve.IsEmpty("at"))); n != 1 {
		t.Fatalf("without a place: %d, want 1", n)
	}

	_, err := client.Count(ctx, name, embedserve.Must(embedserve.GeoRadius("at", 95, 13.405, 2000)))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "lat must be a number from -90 to 90") {
		t.Fatalf("lat 95: %v, want InvalidArgument saying lat must be from -90 to 90", err)
	}
}

func TestAnyObjectValuesCountAndAtLeast(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client)
	review := func(by string, stars int) map[string]any { return map[string]any{"by": by, "stars": stars} }
	_, err := client.Upsert(ctx, name, []embedserve.Document{
		{ID: "soup", Text: "A quick vegan soup", Payload: map[string]any{
			"tags": []any{"vegan", "quick", "cheap"}, "reviews": []any{review("ana", 5), review("bo", 2)}}},
		{ID: "stew", Text: "A hearty stew", Payload: map[string]any{
			"tags": []any{"hearty"}, "reviews": []any{review("ana", 2), review("bo", 5)}}},
		{ID: "salad", Text: "A quick vegan salad", Payload: map[string]any{
			"tags": []any{"vegan", "quick"}, "reviews": []any{}}},
		{ID: "bread", Text: "A loaf of bread", Payload: map[string]any{
			"tags": []any{}, "reviews": []any{review("ana", 4)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	matching := func(filter *pb.Filter) []string {
		t.Helper()
		hits, err := client.Search(ctx, name, embedserve.Text("food"), embedserve.WithLimit(10), embedserve.WithFilter(filter))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, hit := range hits {
			ids = append(ids, hit.ID)
		}
		slices.Sort(ids)
		return ids
	}
	check := func(what string, filter *pb.Filter, want ...string) {
		t.Helper()
		slices.Sort(want)
		if got := matching(filter); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
		if n := count(t, client, name, filter); n != uint64(len(want)) {
			t.Errorf("%s: Count %d, want %d", what, n, len(want))
		}
	}

	atLeast4 := func(key string) *pb.Condition {
		return &pb.Condition{Condition: &pb.Condition_Range{Range: &pb.RangeCondition{Key: key, Gte: proto.Float64(4)}}}
	}
	// stew has a review by ana and a five-star one, but not in one object.
	check("ana's review of 4 stars or more",
		embedserve.Must(embedserve.AnyObject("reviews", embedserve.Must(embedserve.Match("by", "ana"), atLeast4("stars")))),
		"soup", "bread")
	check("a review by ana and one of 4 stars or more",
		embedserve.Must(embedserve.Match("reviews[].by", "ana"), atLeast4("reviews[].stars")),
		"soup", "stew", "bread")
	check("at most one tag", embedserve.Must(embedserve.ValuesCount("tags", -1, 1)), "stew", "bread")
	check("two tags or more", embedserve.Must(embedserve.ValuesCount("tags", 2, -1)), "soup", "salad")
	check("two of vegan, quick and two reviews or more",
		embedserve.AtLeast(2, embedserve.Match("tags", "vegan"), embedserve.Match("tags", "quick"), embedserve.ValuesCount("reviews", 2, -1)),
		"soup", "salad")
	veganAndOneOf := embedserve.Must(embedserve.Match("tags", "vegan"))
	veganAndOneOf.MinShould = embedserve.AtLeast(1, embedserve.Match("tags", "cheap"), embedserve.IsEmpty("reviews")).MinShould
	check("vegan, and cheap or without reviews", veganAndOneOf, "soup", "salad")

	_, err = client.Count(ctx, name, embedserve.Must(embedserve.AnyObject("reviews", embedserve.Must(embedserve.HasID("soup")))))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "has_id") {
		t.Fatalf("HasID inside AnyObject: %v, want InvalidArgument about has_id", err)
	}
	_, err = client.Count(ctx, name, embedserve.Must(embedserve.ValuesCount("tags", -1, -1)))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ValuesCount without bounds: %v, want InvalidArgument", err)
	}
}

func TestMatchExceptMatchTextAnyAndGeoPolygon(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client,
		embedserve.WithPayloadIndex("name", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_TEXT),
		embedserve.WithPayloadIndex("at", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_GEO))
	cafe := func(id, cafeName string, lat, lon float64, lang string, stars int) embedserve.Document {
		return embedserve.Document{ID: id, Text: cafeName + ", a cafe", Payload: map[string]any{
			"name": cafeName, "at": map[string]any{"lat": lat, "lon": lon}, "lang": lang, "stars": stars}}
	}
	_, err := client.Upsert(ctx, name, []embedserve.Document{
		cafe("mitte", "Espresso Bar Mitte", 52.5200, 13.4050, "de", 5),
		cafe("alex", "Tower Coffee", 52.5219, 13.4132, "en", 4),
		cafe("potsdam", "Palace Roastery", 52.3906, 13.0645, "de", 3),
		cafe("hamburg", "Harbour Espresso", 53.5511, 9.9937, "de", 5),
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, filter *pb.Filter, want ...string) {
		t.Helper()
		hits, err := client.Search(ctx, name, embedserve.Text("coffee"), embedserve.WithLimit(10), embedserve.WithFilter(filter))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var got []string
		for _, hit := range hits {
			got = append(got, hit.ID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
		if n := count(t, client, name, filter); n != uint64(len(want)) {
			t.Errorf("%s: Count %d, want %d", what, n, len(want))
		}
	}

	// Around Berlin and Potsdam, an open ring (closed by the server).
	berlin := []*pb.GeoPoint{
		embedserve.Place(52.7, 13.0), embedserve.Place(52.7, 13.8),
		embedserve.Place(52.3, 13.8), embedserve.Place(52.3, 13.0),
	}
	// A hole around Mitte, leaving alex (about 600 m east) out of it.
	mitte := []*pb.GeoPoint{
		embedserve.Place(52.53, 13.39), embedserve.Place(52.53, 13.41),
		embedserve.Place(52.51, 13.41), embedserve.Place(52.51, 13.39),
	}
	check("in the polygon", embedserve.Must(embedserve.GeoPolygon("at", berlin)), "mitte", "alex", "potsdam")
	check("in the polygon, not in its hole", embedserve.Must(embedserve.GeoPolygon("at", berlin, mitte)), "alex", "potsdam")
	check("a name with coffee or espresso", embedserve.Must(embedserve.MatchTextAny("name", "coffee ESPRESSO")), "mitte", "alex", "hamburg")
	check("in the polygon, lang not en",
		embedserve.Must(embedserve.GeoPolygon("at", berlin), embedserve.MatchExcept("lang", "en")), "mitte", "potsdam")
	check("stars not 5", embedserve.Must(embedserve.MatchExceptInts("stars", 5)), "alex", "potsdam")
	check("a missing key does not match", embedserve.Must(embedserve.MatchExceptInts("missing", 5)))

	line := []*pb.GeoPoint{embedserve.Place(52.7, 13.0), embedserve.Place(52.3, 13.8), embedserve.Place(52.7, 13.0)}
	_, err = client.Count(ctx, name, embedserve.Must(embedserve.GeoPolygon("at", line)))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "needs 3 or more different corners") {
		t.Fatalf("a polygon of 2 corners: %v, want InvalidArgument saying it needs 3 or more different corners", err)
	}
}

func TestSearchWithRecency(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims))
	// old is the query itself (similarity 1), dated eleven months before now;
	// fresh is 0.8 like it, a day old.
	query, old, fresh := make([]float32, dims), make([]float32, dims), make([]float32, dims)
	query[0], old[0], fresh[0], fresh[1] = 1, 1, 0.8, 0.6
	docs := []embedserve.Document{
		{ID: "old", Vector: old, Payload: map[string]any{"published": "2026-01-01T00:00:00Z"}},
		{ID: "fresh", Vector: fresh, Payload: map[string]any{"published": "2026-12-04T12:00:00Z"}},
	}
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}

	plain, err := client.Search(ctx, name, embedserve.Vector(query))
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 2 || plain[0].ID != "old" {
		t.Fatalf("without recency: %+v, want old first", plain)
	}
	// A week's half-life, half the score at stake: old (48 half-lives back)
	// keeps half of its score, fresh 0.8 * (0.5 + 0.5 * 0.5^(24/168)) = 0.76.
	recency := []embedserve.QueryOption{embedserve.WithRecency("published", 168, 0.5), embedserve.WithRecencyNow("2026-12-05T12:00:00Z")}
	weighed, err := client.Search(ctx, name, embedserve.Vector(query), recency...)
	if err != nil {
		t.Fatal(err)
	}
	if len(weighed) != 2 || weighed[0].ID != "fresh" {
		t.Fatalf("with recency: %+v, want fresh first", weighed)
	}
	if got, want := scoresByID(weighed)["old"], scoresByID(plain)["old"]/2; math.Abs(float64(got-want)) > 1e-4 {
		t.Fatalf("old scores %v with recency, want half of %v", got, scoresByID(plain)["old"])
	}
	// Recommend takes the same options.
	recommended, err := client.Recommend(ctx, name, []embedserve.Query{embedserve.Vector(query)}, nil, recency...)
	if err != nil {
		t.Fatal(err)
	}
	if len(recommended) != 2 || recommended[0].ID != "fresh" {
		t.Fatalf("recommended with recency: %+v, want fresh first", recommended)
	}

	_, err = client.Search(ctx, name, embedserve.Vector(query), append(recency, embedserve.WithDiversity(0.5))...)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("recency with diversity: %v, want InvalidArgument", err)
	}
}

func TestSearchWithProximity(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims))
	// mitte, alex and hamburg are all 0.8 like the query, at different places;
	// nowhere, 0.6 like it, has no place.
	query := make([]float32, dims)
	query[0] = 1
	places := map[string][2]float64{
		"mitte":   {52.5200, 13.4050},
		"alex":    {52.5219, 13.4132},
		"hamburg": {53.5511, 9.9937},
	}
	var docs []embedserve.Document
	for i, id := range []string{"mitte", "alex", "hamburg", "nowhere"} {
		at, placed := places[id]
		v := make([]float32, dims)
		if placed {
			v[0], v[i+1] = 0.8, 0.6
		} else {
			v[0], v[i+1] = 0.6, 0.8
		}
		doc := embedserve.Document{ID: id, Vector: v}
		if placed {
			doc.Payload = map[string]any{"at": map[string]any{"lat": at[0], "lon": at[1]}}
		}
		docs = append(docs, doc)
	}
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}
	ids := func(hits []embedserve.Hit) []string {
		found := make([]string, len(hits))
		for i, hit := range hits {
			found[i] = hit.ID
		}
		return found
	}

	plain, err := client.Search(ctx, name, embedserve.Vector(query))
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 4 || plain[3].ID != "nowhere" {
		t.Fatalf("without proximity: %+v, want nowhere last", plain)
	}
	// A kilometre's half-distance from Mitte, half the score at stake: mitte
	// keeps all of 0.8, alex (about 600 m off) about 0.66, hamburg (about 255 km
	// off) about 0.4, nowhere half of its 0.6.
	near := embedserve.WithProximity("at", 52.52, 13.405, 1000, 0.5)
	weighed, err := client.Search(ctx, name, embedserve.Vector(query), near)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(weighed), []string{"mitte", "alex", "hamburg", "nowhere"}; !slices.Equal(got, want) {
		t.Fatalf("with proximity: %v, want %v", got, want)
	}
	if got, want := scoresByID(weighed)["nowhere"], scoresByID(plain)["nowhere"]/2; math.Abs(float64(got-want)) > 1e-4 {
		t.Fatalf("nowhere scores %v with proximity, want half of %v", got, scoresByID(plain)["nowhere"])
	}
	// Recommend takes the same options.
	recommended, err := client.Recommend(ctx, name, []embedserve.Query{embedserve.Vector(query)}, nil, near)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(recommended), []string{"mitte", "alex", "hamburg", "nowhere"}; !slices.Equal(got, want) {
		t.Fatalf("recommended with proximity: %v, want %v", got, want)
	}

	_, err = client.Search(ctx, name, embedserve.Vector(query), near, embedserve.WithDiversity(0.5))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("proximity with diversity: %v, want InvalidArgument", err)
	}
}

func TestUpsertVectorsAndStoredText(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims))
	vectors, err := client.Embed(ctx, []string{"red apples", "green pears"}, embedserve.WithTask(pb.Task_TASK_DOCUMENT))
	if err != nil {
		t.Fatal(err)
	}
	n, err := client.Upsert(ctx, name, []embedserve.Document{
		{ID: "apples", Vector: vectors[0], Payload: map[string]any{"color": "red", "tags": []any{"fruit"}}},
		{ID: "pears", Text: "green pears"},
	}, embedserve.WithStoreText(true))
	if err != nil || n != 2 {
		t.Fatalf("upserted %d: %v", n, err)
	}
	stored, err := client.Get(ctx, name, []string{"pears", "apples"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0].Payload["text"] != "green pears" || stored[1].Payload["color"] != "red" {
		t.Fatalf("Get returned %+v", stored)
	}
	hits, err := client.Search(ctx, name, embedserve.Vector(vectors[1]), embedserve.WithLimit(1), embedserve.WithPayload(false))
	if err != nil {
		t.Fatal(err)
	}
	// Without payloads, Payload is an empty map (the server always sends the message).
	if len(hits) != 1 || hits[0].ID != "pears" || hits[0].Score < 0.999 || hits[0].Payload == nil || len(hits[0].Payload) != 0 {
		t.Fatalf("search by the text's own vector: %+v", hits)
	}
	// A payload that is not JSON-like is the caller's mistake.
	_, err = client.Upsert(ctx, name, []embedserve.Document{{ID: "x", Text: "x", Payload: map[string]any{"bad": struct{}{}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad payload: %v, want InvalidArgument", err)
	}
}

func TestKeywordAndHybridSearch(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithBM25(), embedserve.WithPayloadIndex("title", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_TEXT))
	info, err := client.GetCollection(ctx, name)
	if err != nil || !info.GetConfig().GetBm25() {
		t.Fatalf("collection created WithBM25: %+v, %v", info.GetConfig(), err)
	}
	_, err = client.Upsert(ctx, name, []embedserve.Document{
		{ID: "code", Text: "Firmware TX-5531 fixes the charging fault", Payload: map[string]any{"title": "Firmware Notes"}},
		{ID: "charging", Text: "Charging a phone overnight is safe", Payload: map[string]any{"title": "Phone care"}},
		{ID: "cake", Text: "A lemon cake with poppy seeds", Payload: map[string]any{"title": "Cake notes"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	keyword := embedserve.WithSearchMode(pb.SearchMode_SEARCH_MODE_KEYWORD)
	hits, err := client.Search(ctx, name, embedserve.Text("TX-5531 charging"), keyword)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].ID != "code" || hits[1].ID != "charging" || hits[0].Score <= hits[1].Score {
		t.Fatalf("keyword search: %+v", hits)
	}
	hybrid := embedserve.WithSearchMode(pb.SearchMode_SEARCH_MODE_HYBRID)
	hits, err = client.Search(ctx, name, embedserve.Text("TX-5531"), hybrid, embedserve.WithLimit(3))
	if err != nil || len(hits) != 3 || hits[0].ID != "code" {
		t.Fatalf("hybrid search: %+v, %v", hits, err)
	}
	picked, err := client.Search(ctx, name, embedserve.Text("cake"), embedserve.WithLimit(1), embedserve.WithPayloadKeys("title"))
	if err != nil || len(picked) != 1 || len(picked[0].Payload) != 1 || picked[0].Payload["title"] != "Cake notes" {
		t.Fatalf("search WithPayloadKeys: %+v, %v", picked, err)
	}
	batch, err := client.SearchBatch(ctx, name, []embedserve.Query{embedserve.Text("TX-5531"), embedserve.Text("lemon")}, keyword)
	if err != nil || len(batch) != 2 || len(batch[0]) != 1 || batch[0][0].ID != "code" || batch[1][0].ID != "cake" {
		t.Fatalf("SearchBatch: %+v, %v", batch, err)
	}
	titled := embedserve.WithFilter(embedserve.Must(embedserve.MatchText("title", "NOTES")))
	hits, err = client.Search(ctx, name, embedserve.Text("charging"), titled)
	if err != nil || len(hits) != 2 || hits[0].ID == "charging" || hits[1].ID == "charging" {
		t.Fatalf("search with a full-text filter: %+v, %v", hits, err)
	}
	diverse, err := client.Search(ctx, name, embedserve.Text("charging"), embedserve.WithDiversity(0.5), embedserve.WithLimit(3))
	if err != nil || len(diverse) != 3 {
		t.Fatalf("diverse search: %+v, %v", diverse, err)
	}
	_, err = client.Search(ctx, name, embedserve.Text("charging"), hybrid, embedserve.WithDiversity(0.5))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("diverse hybrid search: %v, want InvalidArgument", err)
	}
	if err := client.UpdatePayload(ctx, name, []string{"cake"}, nil, map[string]any{"stock": 4}, "title"); err != nil {
		t.Fatal(err)
	}
	cake, err := client.Get(ctx, name, []string{"cake"}, false)
	if err != nil || len(cake) != 1 || cake[0].Payload["stock"] != 4.0 || cake[0].Payload["title"] != nil {
		t.Fatalf("after UpdatePayload: %+v, %v", cake, err)
	}
	counts, err := client.Facet(ctx, name, "kind", nil, 0)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Facet on a field without an index: %+v, %v, want InvalidArgument", counts, err)
	}
	err = client.UpdatePayload(ctx, name, []string{"no-such-id"}, nil, map[string]any{"stock": 1})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("UpdatePayload of a missing id: %v, want NotFound", err)
	}
	vector, err := client.Embed(ctx, []string{"charging"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Search(ctx, name, embedserve.Vector(vector[0]), keyword)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("keyword search by vector: %v, want InvalidArgument", err)
	}
}

func TestIngestEndsWithTheServerStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	docs := corpus()[:10]

	lastError := func(client *embedserve.Client, collection string) (int, error) {
		acks := 0
		var last error
		for _, err := range client.Ingest(ctx, collection, slices.Values(docs), embedserve.WithBatchSize(3)) {
			if err != nil {
				last = err
				continue
			}
			acks++
		}
		return acks, last
	}

	acks, err := lastError(dial(t), collectionName(t)+"_missing")
	if acks != 0 || status.Code(err) != codes.NotFound {
		t.Fatalf("missing collection: %d acknowledgements, error %v; want NotFound", acks, err)
	}

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := embedserve.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer nobody.Close()
	acks, err = lastError(nobody, "anything")
	if acks != 0 || status.Code(err) != codes.Unavailable {
		t.Fatalf("no server: %d acknowledgements, error %v; want Unavailable", acks, err)
	}
}

func TestIngestStopsEarly(t *testing.T) {
	client := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := newCollection(t, client)
	docs := corpus()[:20]
	seen := 0
	for ack, err := range client.Ingest(ctx, name, slices.Values(docs), embedserve.WithBatchSize(2), embedserve.WithMaxInFlight(2)) {
		if err != nil {
			t.Fatal(err)
		}
		if seen++; seen == 2 {
			if ack.TotalAcknowledged != 4 {
				t.Fatalf("total acknowledged %d after 2 batches of 2", ack.TotalAcknowledged)
			}
			break // cancels the stream
		}
	}
	if seen != 2 {
		t.Fatalf("saw %d acknowledgements", seen)
	}
	// What was acknowledged is stored; the client and server carry on.
	stored, err := client.Get(ctx, name, []string{docs[0].ID, docs[3].ID}, false)
	if err != nil || len(stored) != 2 {
		t.Fatalf("acknowledged documents: %v (err %v)", stored, err)
	}
	ingestAll(t, ctx, client, name, docs, 7)
	if n := count(t, client, name, nil); n != uint64(len(docs)) {
		t.Fatalf("count = %d, want %d", n, len(docs))
	}
}

// upsertPassages writes three documents of four passages each ("rockets-0" ...),
// with payload {"doc", "part"}, for the grouped calls.
func upsertPassages(t *testing.T, ctx context.Context, client *embedserve.Client, name string) {
	t.Helper()
	passages := map[string][]string{
		"rockets": {"The rocket lifted off into orbit.", "Astronauts docked with the space station.", "A telescope watched the launch.", "The capsule splashed down."},
		"pasta":   {"Boil the pasta in salted water.", "Garlic and olive oil make the sauce.", "Grate parmesan over the spaghetti.", "Fresh basil goes in last."},
		"stocks":  {"The stock market fell on inflation fears.", "Bond yields rose sharply.", "Investors sold bank shares.", "Dividends were cut."},
	}
	var docs []embedserve.Document
	for doc, texts := range passages {
		for part, text := range texts {
			docs = append(docs, embedserve.Document{ID: fmt.Sprintf("%s-%d", doc, part), Text: text, Payload: map[string]any{"doc": doc, "part": part}})
		}
	}
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}
}

func TestSearchGroups(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client)
	upsertPassages(t, ctx, client, name)
	query := embedserve.Text("astronauts launching a rocket into space")
	groups, err := client.SearchGroups(ctx, name, query, "doc", embedserve.WithGroupSize(2), embedserve.WithLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Key != "rockets" {
		t.Fatalf("2 groups by doc, rockets first: %+v", groups)
	}
	if groups[0].Key == groups[1].Key {
		t.Fatalf("two groups with key %v", groups[0].Key)
	}
	for _, g := range groups {
		if _, ok := g.Key.(string); !ok {
			t.Fatalf("group key %#v is not a string", g.Key)
		}
		if len(g.Hits) != 2 { // every doc has 4 passages: the groups are full
			t.Fatalf("group %v: %d hits, want 2", g.Key, len(g.Hits))
		}
		for i, hit := range g.Hits {
			if hit.Payload["doc"] != g.Key || !strings.HasPrefix(hit.ID, g.Key.(string)+"-") {
				t.Fatalf("group %v holds %s (payload %v)", g.Key, hit.ID, hit.Payload)
			}
			if i > 0 && hit.Score > g.Hits[i-1].Score {
				t.Fatalf("group %v: hits not sorted by score: %+v", g.Key, g.Hits)
			}
		}
	}
	if groups[1].Hits[0].Score > groups[0].Hits[0].Score {
		t.Fatalf("groups not ranked by their best hit: %v, then %v", groups[0].Hits[0].Score, groups[1].Hits[0].Score)
	}
	best, err := client.Search(ctx, name, query, embedserve.WithLimit(1))
	if err != nil || len(best) != 1 || best[0].ID != groups[0].Hits[0].ID {
		t.Fatalf("best hit %+v (%v), best group's %s", best, err, groups[0].Hits[0].ID)
	}

	// Integer keys come back as int64; the default group size is 3.
	parts, err := client.SearchGroups(ctx, name, query, "part")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("%d groups by part, want 4: %+v", len(parts), parts)
	}
	for _, g := range parts {
		part, ok := g.Key.(int64)
		if !ok || len(g.Hits) != 3 {
			t.Fatalf("group %v (%T): %d hits, want an int64 key and 3 hits", g.Key, g.Key, len(g.Hits))
		}
		for _, hit := range g.Hits {
			if hit.Payload["part"] != float64(part) {
				t.Fatalf("group %d holds %s (payload %v)", part, hit.ID, hit.Payload)
			}
		}
	}

	for option, refused := range map[string]embedserve.QueryOption{"offset": embedserve.WithOffset(1), "diversity": embedserve.WithDiversity(0.5)} {
		_, err := client.SearchGroups(ctx, name, query, "doc", refused)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("grouped search with %s: %v, want InvalidArgument", option, err)
		}
	}
}

func TestRecommendGroups(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client)
	upsertPassages(t, ctx, client, name)
	positive := embedserve.IDs("rockets-0")
	groups, err := client.RecommendGroups(ctx, name, positive, nil, "doc",
		embedserve.WithGroupSize(2), embedserve.WithLimit(2), embedserve.WithExact(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2: %+v", len(groups), groups)
	}
	for _, g := range groups {
		if len(g.Hits) == 0 || len(g.Hits) > 2 {
			t.Fatalf("group %v: %d hits, want 1 or 2", g.Key, len(g.Hits))
		}
		for _, hit := range g.Hits {
			if hit.Payload["doc"] != g.Key {
				t.Fatalf("group %v holds %s (payload %v)", g.Key, hit.ID, hit.Payload)
			}
			if hit.ID == "rockets-0" {
				t.Fatalf("group %v holds the positive example", g.Key)
			}
		}
	}

	// The groups are the plain ranking's first two docs, with their best two hits.
	ranked, err := client.Recommend(ctx, name, positive, nil, embedserve.WithLimit(100), embedserve.WithExact(true))
	if err != nil {
		t.Fatal(err)
	}
	var want []embedserve.HitGroup
	index := map[any]int{}
	for _, hit := range ranked {
		key := hit.Payload["doc"]
		i, ok := index[key]
		if !ok {
			if len(want) == 2 {
				continue
			}
			i = len(want)
			index[key] = i
			want = append(want, embedserve.HitGroup{Key: key})
		}
		if len(want[i].Hits) < 2 {
			want[i].Hits = append(want[i].Hits, hit)
		}
	}
	idsOf := func(hits []embedserve.Hit) []string {
		ids := make([]string, len(hits))
		for i, hit := range hits {
			ids[i] = hit.ID
		}
		return ids
	}
	if len(want) != len(groups) {
		t.Fatalf("grouped %d docs, the ranking %d", len(groups), len(want))
	}
	for i := range want {
		if groups[i].Key != want[i].Key || !slices.Equal(idsOf(groups[i].Hits), idsOf(want[i].Hits)) {
			t.Fatalf("group %d: %v %v, from the ranking %v %v", i, groups[i].Key, idsOf(groups[i].Hits), want[i].Key, idsOf(want[i].Hits))
		}
	}

	for option, refused := range map[string]embedserve.QueryOption{"offset": embedserve.WithOffset(1), "diversity": embedserve.WithDiversity(0.5)} {
		_, err := client.RecommendGroups(ctx, name, positive, nil, "doc", refused)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("grouped recommendation with %s: %v, want InvalidArgument", option, err)
		}
	}
}

// longText is about 600 words: a paragraph repeated, each copy numbered.
func longText(topic string) string {
	var b strings.Builder
	for n := range 10 {
		fmt.Fprintf(&b, "Part %d about %s. The %s team met early in the morning to review the plan for the week, "+
			"checking every step twice, writing down the open questions, and agreeing on who would follow up with whom "+
			"before the next meeting; afterwards they walked to the old harbour, talked about the weather, the "+
			"long winter ahead and the small things that make a working day pleasant. ", n, topic, topic)
	}
	return b.String()
}

func TestUpsertAndIngestSplitIntoPassages(t *testing.T) {
	client := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := newCollection(t, client)
	text := longText("harbour")
	if words := len(strings.Fields(text)); words < 500 {
		t.Fatalf("the long text has %d words", words)
	}
	n, err := client.Upsert(ctx, name, []embedserve.Document{{ID: "long", Text: text, Payload: map[string]any{"lang": "en"}}},
		embedserve.WithSplitTokens(64, 8))
	if err != nil {
		t.Fatal(err)
	}
	if n <= 5 {
		t.Fatalf("upserted %d points for ~600 words in passages of 64 tokens, want more than 5", n)
	}
	if stored := count(t, client, name, nil); stored != n {
		t.Fatalf("%d points stored, %d upserted", stored, n)
	}
	if unsplit, err := client.Get(ctx, name, []string{"long"}, false); err != nil || len(unsplit) != 0 {
		t.Fatalf("Get of the document's own id: %+v, %v; want no point", unsplit, err)
	}
	stored, err := client.Get(ctx, name, []string{"long#0", "long#1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0].ID != "long#0" || stored[1].ID != "long#1" {
		t.Fatalf("Get of the first two passages: %+v", stored)
	}
	var spans [2][]any
	for i, passage := range stored {
		p := passage.Payload
		if p["doc_id"] != "long" || p["passage"] != float64(i) || p["passages"] != float64(n) || p["lang"] != "en" {
			t.Fatalf("passage %d payload %v: want doc_id long, passage %d, passages %d, lang en", i, p, i, n)
		}
		span, ok := p["span"].([]any)
		if !ok || len(span) != 2 {
			t.Fatalf("passage %d span %#v, want [start, end]", i, p["span"])
		}
		spans[i] = span
	}
	first, second := spans[0], spans[1]
	if first[0] != 0.0 || first[1].(float64) <= 0 || second[0].(float64) <= 0 || second[0].(float64) >= first[1].(float64) || second[1].(float64) > float64(len(text)) {
		t.Fatalf("spans %v and %v: want the first from 0 and the second starting inside it", first, second)
	}

	groups, err := client.SearchGroups(ctx, name, embedserve.Text("a walk to the old harbour"), "doc_id", embedserve.WithLimit(5))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Key != "long" || len(groups[0].Hits) != 3 {
		t.Fatalf("groups by doc_id: %+v; want one, long, with 3 passages", groups)
	}
	for _, hit := range groups[0].Hits {
		if !strings.HasPrefix(hit.ID, "long#") || hit.Payload["doc_id"] != "long" {
			t.Fatalf("group long holds %s (payload %v)", hit.ID, hit.Payload)
		}
	}

	docs := []embedserve.Document{{ID: "garden", Text: longText("garden")}, {ID: "kitchen", Text: longText("kitchen")}}
	var acked []string
	// The model's own maximum: fewer, longer passages than 64 tokens give.
	for ack, err := range client.Ingest(ctx, name, slices.Values(docs), embedserve.WithSplit(), embedserve.WithBatchSize(1)) {
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, ack.Response.GetIds()...)
	}
	if !slices.Equal(acked, []string{"garden", "kitchen"}) {
		t.Fatalf("Ingest acknowledged %v, want the document ids", acked)
	}
	for _, doc := range docs {
		passages := count(t, client, name, embedserve.Must(embedserve.Match("doc_id", doc.ID)))
		got, err := client.Get(ctx, name, []string{doc.ID + "#0"}, false)
		if err != nil || len(got) != 1 || passages < 2 || passages >= n || got[0].Payload["passages"] != float64(passages) {
			t.Fatalf("ingested %s: %d passages (64 tokens gave %d), first %+v (%v)", doc.ID, passages, n, got, err)
		}
	}
	groups, err = client.SearchGroups(ctx, name, embedserve.Text("planting flowers in the garden"), "doc_id", embedserve.WithGroupSize(1))
	if err != nil || len(groups) != 3 {
		t.Fatalf("groups by doc_id after ingesting: %+v, %v; want 3", groups, err)
	}
}

// scoresByID maps each hit's ID to its score.
func scoresByID(hits []embedserve.Hit) map[string]float32 {
	byID := map[string]float32{}
	for _, hit := range hits {
		byID[hit.ID] = hit.Score
	}
	return byID
}

func TestBinaryQuantizationAndOversampling(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithCollectionConfig(&pb.CollectionConfig{Quantization: pb.Quantization_QUANTIZATION_BINARY}))
	info, err := client.GetCollection(ctx, name)
	if err != nil || info.GetConfig().GetQuantization() != pb.Quantization_QUANTIZATION_BINARY {
		t.Fatalf("GetCollection: quantization %v, %v; want BINARY", info.GetConfig().GetQuantization(), err)
	}
	docs := corpus()
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}
	exact, err := client.Search(ctx, name, embedserve.Text(docs[0].Text), embedserve.WithLimit(3), embedserve.WithExact(true))
	if err != nil {
		t.Fatal(err)
	}
	oversampled, err := client.Search(ctx, name, embedserve.Text(docs[0].Text), embedserve.WithLimit(3), embedserve.WithOversampling(10))
	if err != nil {
		t.Fatal(err)
	}
	// A collection this small is scanned: with ten times the candidates rescored, the
	// order is the exact one.
	if len(exact) != 3 || len(oversampled) != 3 || exact[0].ID != docs[0].ID || oversampled[0].ID != exact[0].ID {
		t.Fatalf("exact %v, oversampled %v; want %s first in both", exact, oversampled, docs[0].ID)
	}
	plain := newCollection(t, client)
	_, err = client.Search(ctx, plain, embedserve.Text("anything"), embedserve.WithOversampling(2))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "has no quantization") {
		t.Fatalf("oversampling on a collection without quantization: %v, want InvalidArgument", err)
	}
}
