// Command embed embeds texts with an embedserve server, once with a unary
// call and once through a bidirectional stream, then ingests them into a
// temporary collection (a long text split into passages), searches it (also in groups) and asks for recommendations.
//
//	go run ./examples/embed -target 127.0.0.1:50051 "first text" "second text"
//
// The code between the "snippet" markers is the one shown in clients/go/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

func main() {
	target := flag.String("target", envOr("EMBEDSERVE_TARGET", "127.0.0.1:50051"), "server address")
	apiKey := flag.String("api-key", os.Getenv("EMBEDSERVE_API_KEY"), "API key sent as a bearer token")
	flag.Parse()
	texts := flag.Args()
	if len(texts) == 0 {
		texts = []string{"The cat sat on the mat.", "Vectors for everyone."}
	}
	if err := run(*target, *apiKey, texts); err != nil {
		log.Fatal(err)
	}
}

func run(target, apiKey string, texts []string) error {
	ctx := context.Background()
	var options []embedserve.Option
	if apiKey != "" {
		options = append(options, embedserve.WithAPIKey(apiKey))
	}
	// snippet: connect
	client, err := embedserve.Dial(target, append(options, embedserve.WithTimeout(30*time.Second))...)
	if err != nil {
		return err
	}
	defer client.Close()
	// end snippet

	// snippet: embed
	vectors, err := client.Embed(ctx, texts)
	if err != nil {
		return err // status.Code(err) gives the gRPC code
	}
	fmt.Printf("%d vectors of %d dimensions\n", len(vectors), len(vectors[0]))
	// end snippet

	// snippet: stream
	batches := embedserve.Batches(texts, 1) // any iter.Seq[[]string]
	for result, err := range client.EmbedStream(ctx, batches, embedserve.WithMaxInFlight(8)) {
		if err != nil {
			return err
		}
		fmt.Printf("request %s: %d vectors\n", result.RequestID, len(result.Vectors))
	}
	// end snippet

	collection := fmt.Sprintf("example-%d", time.Now().UnixNano())
	if _, err := client.CreateCollection(ctx, collection); err != nil {
		return err
	}
	defer client.DeleteCollection(context.Background(), collection)
	var docs []embedserve.Document
	for i, text := range texts {
		docs = append(docs, embedserve.Document{ID: strconv.Itoa(i), Text: text, Payload: map[string]any{"lang": "en"}})
	}

	// snippet: ingest
	// Acknowledged in order once durable; any iter.Seq[Document], or embedserve.FromChannel(ch).
	for ack, err := range client.Ingest(ctx, collection, slices.Values(docs), embedserve.WithBatchSize(64)) {
		if err != nil {
			return err // e.g. codes.NotFound, codes.Unavailable
		}
		fmt.Printf("batch %d durable: %d documents in total\n", ack.Index, ack.TotalAcknowledged)
	}
	// end snippet

	// snippet: split
	// Long texts as passages "<id>#0", "<id>#1", ... of at most 128 tokens, each
	// repeating 16 of the one before (WithSplit(): the model's maximum, an eighth);
	// payloads gain doc_id, passage, passages and span. Upsert counts passages.
	long := embedserve.Document{ID: "long", Text: strings.Repeat(texts[0]+" ", 100), Payload: map[string]any{"lang": "en"}}
	passages, err := client.Upsert(ctx, collection, []embedserve.Document{long}, embedserve.WithSplitTokens(128, 16))
	if err != nil {
		return err
	}
	fmt.Printf("split: %d passages\n", passages)
	// end snippet

	// snippet: search
	hits, err := client.Search(ctx, collection, embedserve.Text(texts[0]), // or embedserve.Vector(v)
		embedserve.WithLimit(3), embedserve.WithFilter(embedserve.Must(embedserve.Match("lang", "en"))))
	if err != nil {
		return err
	}
	for _, hit := range hits {
		fmt.Printf("search: %s %.3f %v\n", hit.ID, hit.Score, hit.Payload["lang"])
	}
	// end snippet

	// snippet: groups
	// The best 2 hits per value of the payload field "lang"; WithLimit counts groups.
	groups, err := client.SearchGroups(ctx, collection, embedserve.Text(texts[0]), "lang",
		embedserve.WithGroupSize(2), embedserve.WithLimit(3))
	if err != nil {
		return err
	}
	for _, group := range groups {
		fmt.Printf("group %v: %d hits, best %s\n", group.Key, len(group.Hits), group.Hits[0].ID)
	}
	// end snippet

	// snippet: recommend
	// Like document 0 (ids, embedserve.Text or embedserve.Vector examples); never returns the examples.
	recommended, err := client.Recommend(ctx, collection, embedserve.IDs("0"), nil,
		embedserve.WithStrategy(pb.RecommendStrategy_RECOMMEND_STRATEGY_BEST_SCORE), embedserve.WithLimit(3))
	if err != nil {
		return err
	}
	for _, hit := range recommended {
		fmt.Printf("recommend: %s %.3f\n", hit.ID, hit.Score)
	}
	// end snippet
	return nil
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
