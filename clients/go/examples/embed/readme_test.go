package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeSnippetsAreTheExample keeps clients/go/README.md's code blocks
// identical to the marked snippets of this program.
func TestReadmeSnippetsAreTheExample(t *testing.T) {
	source, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile(`(?s)\t// snippet: (\w+)\n(.*?)\t// end snippet\n`).FindAllStringSubmatch(string(source), -1)
	var names []string
	for _, s := range snippets {
		names = append(names, s[1])
	}
	if want := []string{"connect", "embed", "stream", "ingest", "split", "search", "groups", "recommend"}; !slices.Equal(names, want) {
		t.Fatalf("snippets in main.go: %v, want %v", names, want)
	}
	for _, s := range snippets {
		var lines []string
		for _, line := range strings.Split(strings.TrimSuffix(s[2], "\n"), "\n") {
			lines = append(lines, strings.TrimPrefix(line, "\t"))
		}
		block := "```go\n" + strings.Join(lines, "\n") + "\n```"
		if !strings.Contains(string(readme), block) {
			t.Errorf("README.md lacks the %q snippet of main.go:\n%s", s[1], block)
		}
	}
}
