// Command embed embeds texts with an embedserve server, once with a unary
// call and once through a bidirectional stream.
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
	"time"

	"github.com/embedserve/embedserve/clients/go/embedserve"
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
	return nil
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
