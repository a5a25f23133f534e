package embedserve_test

// Rerank against the server's reranker. The test server's reranker is a random
// tiny cross-encoder, so these check the shape of the answers, not relevance.
// They run where the server serves a reranker; EMBEDSERVE_TEST_RERANKER=1 says
// it must (scripts/test_clients.sh starts it so), and they fail without one.

import (
	"context"
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
