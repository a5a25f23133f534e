package embedserve_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

func TestScrollClusterAndDuplicates(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims))
	// Two groups of vectors along two axes, and one near-copy of b0.
	var docs []embedserve.Document
	for i := range 6 {
		for group, axis := range []int{0, 1} {
			v := make([]float32, dims)
			v[axis] = 1
			v[2+i] = 0.3
			docs = append(docs, embedserve.Document{ID: fmt.Sprintf("%c%d", 'a'+group, i), Vector: v})
		}
	}
	copyOf := make([]float32, dims)
	copyOf[1], copyOf[2], copyOf[10] = 1, 0.3, 0.01
	docs = append(docs, embedserve.Document{ID: "b0-copy", Vector: copyOf})
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}

	page, next, err := client.Scroll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(5)})
	if err != nil || len(page) != 5 || next == "" {
		t.Fatalf("first page: %d docs, next %q, %v", len(page), next, err)
	}
	seen := map[string]bool{}
	for doc, err := range client.ScrollAll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(4), WithVectors: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Vector) != dims {
			t.Fatalf("%s has %d dimensions", doc.ID, len(doc.Vector))
		}
		seen[doc.ID] = true
	}
	if len(seen) != len(docs) {
		t.Fatalf("ScrollAll saw %d of %d documents", len(seen), len(docs))
	}

	clusters, err := client.Cluster(ctx, &pb.ClusterRequest{Source: &pb.ClusterRequest_Collection{Collection: name}, K: proto.Uint32(2)})
	if err != nil {
		t.Fatal(err)
	}
	label := map[string]int32{}
	for i, id := range clusters.GetIds() {
		label[id] = clusters.GetLabels()[i]
	}
	if clusters.GetK() != 2 || label["a0"] == label["b0"] || label["a0"] != label["a5"] || label["b0"] != label["b0-copy"] {
		t.Fatalf("labels %v", label)
	}

	dups, err := client.FindDuplicates(ctx, &pb.FindDuplicatesRequest{Collection: name, Threshold: proto.Float32(0.99)})
	if err != nil {
		t.Fatal(err)
	}
	if len(dups.GetPairs()) != 1 || dups.GetPairs()[0].GetA() != "b0" || dups.GetPairs()[0].GetB() != "b0-copy" {
		t.Fatalf("pairs %v", dups.GetPairs())
	}
	_, err = client.FindDuplicates(ctx, &pb.FindDuplicatesRequest{Collection: name, Threshold: proto.Float32(2)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("threshold 2: %v, want InvalidArgument", err)
	}
}
