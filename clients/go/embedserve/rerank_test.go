package embedserve_test

// Rerank against the server's reranker. The test server's reranker is a random
// tiny cross-encoder, so these check the shape of the answers, not relevance.
// They run where the server serves a reranker; EMBEDSERVE_TEST_RERANKER=1 says
// it must (scripts/test_clients.sh starts it so), and they fail without one.

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

const rerankQuery = "cat"

var rerankDocuments = []string{
	"The cat sat on the mat.",
	"Paris is the capital of France.",
	"zebra zebra zebra",
	"12345 67890",
	"A cat is a small domesticated feline.",
	"ünïcødé ✓",
	"x",
}

// dialReranker dials the server under test and returns its reranker's
// description; it skips the test where the server serves none, unless
// EMBEDSERVE_TEST_RERANKER=1 requires one.
func dialReranker(t *testing.T) (*embedserve.Client, *pb.RerankerInfo) {
	t.Helper()
	client := dial(t)
	info, err := client.ModelInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetReranker() == nil {
		if os.Getenv("EMBEDSERVE_TEST_RERANKER") == "1" {
			t.Fatalf("EMBEDSERVE_TEST_RERANKER=1 but the server at %s serves no reranker", target)
		}
		t.Skipf("the server at %s serves no reranker (start it with --reranker; EMBEDSERVE_TEST_RERANKER=1 requires one)", target)
	}
	return client, info.GetReranker()
}

func TestRerankRanksEveryDocumentBestFirst(t *testing.T) {
	client, _ := dialReranker(t)
	ranked, err := client.Rerank(context.Background(), rerankQuery, rerankDocuments)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranked) != len(rerankDocuments) {
		t.Fatalf("got %d results for %d documents", len(ranked), len(rerankDocuments))
	}
	var indices []int
	for i, r := range ranked {
		if i > 0 && r.Score > ranked[i-1].Score {
			t.Fatalf("result %d scores %g above result %d's %g", i, r.Score, i-1, ranked[i-1].Score)
		}
		if i > 0 && r.Score == ranked[i-1].Score && r.Index < ranked[i-1].Index {
			t.Fatalf("tied results %d and %d are not in request order: documents %d, %d", i-1, i, ranked[i-1].Index, r.Index)
		}
		if r.Document != "" {
			t.Fatalf("result %d carries its document without WithReturnDocuments: %q", i, r.Document)
		}
		indices = append(indices, r.Index)
	}
	slices.Sort(indices)
	for i, index := range indices {
		if index != i {
			t.Fatalf("indices %v are not a permutation of 0..%d", indices, len(rerankDocuments)-1)
		}
	}
}

func TestRerankOptions(t *testing.T) {
	client, reranker := dialReranker(t)
	ctx := context.Background()
	all, err := client.Rerank(ctx, rerankQuery, rerankDocuments)
	if err != nil {
		t.Fatal(err)
	}

	again, err := client.Rerank(ctx, rerankQuery, rerankDocuments)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, all) {
		t.Fatalf("the same request ranked differently:\n%v\n%v", all, again)
	}

	top, err := client.Rerank(ctx, rerankQuery, rerankDocuments, embedserve.WithTopN(2))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(top, all[:2]) {
		t.Fatalf("WithTopN(2) gave %v, want the first two of %v", top, all)
	}

	withText, err := client.Rerank(ctx, rerankQuery, rerankDocuments, embedserve.WithReturnDocuments(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(withText) != len(rerankDocuments) {
		t.Fatalf("WithReturnDocuments: %d results for %d documents", len(withText), len(rerankDocuments))
	}
	for _, r := range withText {
		if r.Document != rerankDocuments[r.Index] {
			t.Fatalf("result for document %d carries %q, want %q", r.Index, r.Document, rerankDocuments[r.Index])
		}
	}

	if reranker.GetActivation() != "sigmoid" {
		t.Fatalf("the test reranker's activation is %q, want sigmoid", reranker.GetActivation())
	}
	raw, err := client.Rerank(ctx, rerankQuery, rerankDocuments, embedserve.WithRawScores(true),
		embedserve.WithRerankOverflow(pb.OverflowPolicy_OVERFLOW_POLICY_TRUNCATE_RIGHT))
	if err != nil {
		t.Fatal(err)
	}
	scores := map[int]float32{}
	for _, r := range all {
		scores[r.Index] = r.Score
	}
	if len(raw) != len(all) {
		t.Fatalf("WithRawScores: %d results for %d documents", len(raw), len(all))
	}
	for _, r := range raw {
		want := float64(scores[r.Index])
		if got := 1 / (1 + math.Exp(-float64(r.Score))); math.Abs(got-want) > 1e-5 {
			t.Fatalf("document %d: sigmoid(raw %g) = %g, score %g", r.Index, r.Score, got, want)
		}
	}
}

func TestRerankNoDocumentsIsInvalidArgument(t *testing.T) {
	client, _ := dialReranker(t)
	_, err := client.Rerank(context.Background(), "a query", nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("status.Code(err) = %v (err %v), want InvalidArgument", status.Code(err), err)
	}
}

// searchRerankTexts are the documents of the reranked searches, ids "d0",
// "d1", ...
var searchRerankTexts = []string{
	"The cat sat on the mat.",
	"A cat is a small domesticated feline.",
	"Dogs bark at the postman.",
	"Paris is the capital of France.",
	"The stock market fell sharply today.",
	"Kittens sleep most of the day.",
	"A recipe for garlic pasta.",
	"The rocket reached orbit at dawn.",
}

// scored is a hit's id and score, to compare reranked hits.
type scored struct {
	id    string
	score float32
}

// rerankedHits is what a search reranking hits should answer: hits (a first
// stage, best first) scored by Rerank on their texts at payload[key], best
// first, ties in the first stage's order.
func rerankedHits(t *testing.T, client *embedserve.Client, query string, hits []embedserve.Hit, key string) []scored {
	t.Helper()
	texts := make([]string, len(hits))
	for i, hit := range hits {
		text, ok := hit.Payload[key].(string)
		if !ok || text == "" {
			t.Fatalf("hit %s has no text at payload[%q]: %v", hit.ID, key, hit.Payload)
		}
		texts[i] = text
	}
	ranked, err := client.Rerank(context.Background(), query, texts)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]scored, len(ranked))
	for i, r := range ranked {
		want[i] = scored{hits[r.Index].ID, r.Score}
	}
	return want
}

// checkReranked checks that got are the first len(got) of want, as far as
// ties allow: the same scores position by position (within 1e-5), each hit
// with its own score in want, no id twice, scores not increasing. The tiny
// bfloat16 test reranker ties often, and a tie at the cut may take any of the
// tied hits.
func checkReranked(t *testing.T, what string, got []embedserve.Hit, want []scored, n int) {
	t.Helper()
	if len(got) != n || len(want) < n {
		t.Fatalf("%s: %d hits, want %d of %v", what, len(got), n, want)
	}
	wantScores := map[string]float32{}
	for _, w := range want {
		wantScores[w.id] = w.score
	}
	seen := map[string]bool{}
	for i, hit := range got {
		if math.Abs(float64(hit.Score-want[i].score)) > 1e-5 {
			t.Fatalf("%s: hit %d (%s) scores %g, want %g: got %v, want the first %d of %v", what, i, hit.ID, hit.Score, want[i].score, got, n, want)
		}
		score, ok := wantScores[hit.ID]
		if !ok || math.Abs(float64(hit.Score-score)) > 1e-5 || seen[hit.ID] {
			t.Fatalf("%s: hit %d is %s scoring %g; want the first %d of %v", what, i, hit.ID, hit.Score, n, want)
		}
		seen[hit.ID] = true
		if i > 0 && hit.Score > got[i-1].Score {
			t.Fatalf("%s: hit %d scores %g above hit %d's %g", what, i, hit.Score, i-1, got[i-1].Score)
		}
	}
}

func TestSearchWithRerank(t *testing.T) {
	client, _ := dialReranker(t)
	ctx := context.Background()
	const query = "a cat on a mat"
	stored := newCollection(t, client, embedserve.WithVectorSize(dims))
	bare := newCollection(t, client, embedserve.WithVectorSize(dims))
	docs := make([]embedserve.Document, len(searchRerankTexts))
	for i, text := range searchRerankTexts {
		docs[i] = embedserve.Document{ID: fmt.Sprintf("d%d", i), Text: text, Payload: map[string]any{"body": text}}
	}
	if _, err := client.Upsert(ctx, stored, docs, embedserve.WithStoreText(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Upsert(ctx, bare, docs); err != nil {
		t.Fatal(err)
	}
	all := embedserve.WithLimit(uint32(len(docs)))

	// Every document, by the first stage alone, then reranked here.
	plain, err := client.Search(ctx, stored, embedserve.Text(query), all)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != len(docs) {
		t.Fatalf("plain search: %d hits, want %d", len(plain), len(docs))
	}
	want := rerankedHits(t, client, query, plain, "text")

	reranked, err := client.Search(ctx, stored, embedserve.Text(query), embedserve.WithLimit(3), embedserve.WithRerank(0))
	if err != nil {
		t.Fatal(err)
	}
	checkReranked(t, "WithRerank(0)", reranked, want, 3)

	// SearchBatch takes the same options.
	batch, err := client.SearchBatch(ctx, stored, []embedserve.Query{embedserve.Text(query), embedserve.Text(query)},
		embedserve.WithLimit(3), embedserve.WithRerank(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 2 {
		t.Fatalf("SearchBatch: %d answers, want 2", len(batch))
	}
	for i, hits := range batch {
		checkReranked(t, fmt.Sprintf("SearchBatch search %d", i), hits, want, 3)
	}

	// Four candidates: the reranker reads the first stage's best four alone.
	fewer, err := client.Search(ctx, stored, embedserve.Text(query), embedserve.WithLimit(3), embedserve.WithRerank(4))
	if err != nil {
		t.Fatal(err)
	}
	checkReranked(t, "WithRerank(4)", fewer, rerankedHits(t, client, query, plain[:4], "text"), 3)

	// The reranker reads the query's text: a vector query is refused, and so
	// are the other re-rankings.
	vectors, err := client.Embed(ctx, []string{query}, embedserve.WithTask(pb.Task_TASK_QUERY))
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Search(ctx, stored, embedserve.Vector(vectors[0]), embedserve.WithRerank(0))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("vector query with rerank: %v, want InvalidArgument", err)
	}
	_, err = client.Search(ctx, stored, embedserve.Text(query), embedserve.WithRerank(0), embedserve.WithDiversity(0.5))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("rerank with diversity: %v, want InvalidArgument", err)
	}
	groups, err := client.SearchGroups(ctx, stored, embedserve.Text(query), "body", embedserve.WithRerank(0), embedserve.WithLimit(2))
	if err != nil || len(groups) != 2 {
		t.Fatalf("grouped search with rerank: %d groups, %v; want 2", len(groups), err)
	}
	_, err = client.Recommend(ctx, stored, embedserve.IDs("d0"), nil, embedserve.WithRerank(0))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("recommendation with rerank: %v, want InvalidArgument", err)
	}

	// Written without WithStoreText, the documents keep no "text" to read;
	// WithRerankTextKey names the field that holds it.
	_, err = client.Search(ctx, bare, embedserve.Text(query), embedserve.WithLimit(3), embedserve.WithRerank(0))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("rerank without stored text: %v, want FailedPrecondition", err)
	}
	bodies, err := client.Search(ctx, bare, embedserve.Text(query), all)
	if err != nil {
		t.Fatal(err)
	}
	byBody, err := client.Search(ctx, bare, embedserve.Text(query), embedserve.WithLimit(3), embedserve.WithRerankTextKey("body"))
	if err != nil {
		t.Fatal(err)
	}
	checkReranked(t, `WithRerankTextKey("body")`, byBody, rerankedHits(t, client, query, bodies, "body"), 3)
}
