package embedserve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxPayloadDepth is the server's limit (the Python client's
// MAX_PAYLOAD_DEPTH): objects and arrays nest at most this deep, the
// payload's own object the first level. Deeper, the server's protobuf decoder
// refuses the whole message with an error that names nothing, and a stream
// may have stored the batch without acknowledging it.
const maxPayloadDepth = 32

// payloadError refuses, as the Python client does and with its words, a
// payload that cannot be sent as it is: nested past maxPayloadDepth, holding
// an integer that a Struct (every number a double) would change, or a string
// or key that is not UTF-8 ("payload.a.b is not UTF-8 (...)", "payload.a key
// \"b\\xff\" is not UTF-8 (...)"). what names the payload's owner
// ("document \"7\": "), or is empty.
func payloadError(what string, payload map[string]any) error {
	if path, deep := findInPayload(payload, 1, tooDeep); deep != "" {
		return status.Errorf(codes.InvalidArgument, "embedserve: %spayload%s: %s", what, path, deep)
	}
	if path, inexact := findInPayload(payload, 1, inexactInteger); inexact != "" {
		return status.Errorf(codes.InvalidArgument, "embedserve: %spayload '%s': %s", what, strings.TrimPrefix(path, "."), inexact)
	}
	if path, text := findInPayload(payload, 1, notUTF8); text != "" {
		return status.Errorf(codes.InvalidArgument, "embedserve: %spayload%s %s", what, path, text)
	}
	return nil
}

// findInPayload returns the first problem that problem finds in value or
// under it, and its path (".key" and "[index]" steps); depth counts the
// objects and arrays holding value, and value itself if it is one. The path
// is made only on the way back from a problem: most payloads have none.
func findInPayload(value any, depth int, problem func(value any, depth int) string) (string, string) {
	if found := problem(value, depth); found != "" {
		return "", found
	}
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			if path, found := findInPayload(item, depth+1, problem); found != "" {
				return "." + key + path, found
			}
		}
	case []any:
		for i, item := range v {
			if path, found := findInPayload(item, depth+1, problem); found != "" {
				return "[" + strconv.Itoa(i) + "]" + path, found
			}
		}
	}
	return "", ""
}

func tooDeep(value any, depth int) string {
	switch value.(type) {
	case map[string]any, []any:
		if depth > maxPayloadDepth {
			return fmt.Sprintf("objects and arrays nest at most %d deep", maxPayloadDepth)
		}
	}
	return ""
}

// inexactInteger says why an integer cannot travel as a double, or "". The
// smaller integer types always fit; a float is sent as it is.
func inexactInteger(value any, _ int) string {
	switch n := value.(type) {
	case int:
		return inexactSigned(int64(n))
	case int64:
		return inexactSigned(n)
	case uint:
		return inexactUnsigned(uint64(n))
	case uint64:
		return inexactUnsigned(n)
	case json.Number: // as json.Decoder.UseNumber hands out large ids
		integer, ok := new(big.Int).SetString(string(n), 10)
		if !ok {
			return "" // not an integer: a float, sent as its nearest double
		}
		double, _ := new(big.Float).SetInt(integer).Float64()
		if math.IsInf(double, 0) {
			return "" // structpb refuses it itself
		}
		if back, _ := big.NewFloat(double).Int(nil); back.Cmp(integer) != 0 {
			return changedInteger(integer.String(), double)
		}
	}
	return ""
}

func inexactSigned(n int64) string {
	if double := float64(n); double < 0x1p63 && int64(double) == n {
		return ""
	}
	return changedInteger(strconv.FormatInt(n, 10), float64(n))
}

func inexactUnsigned(n uint64) string {
	if double := float64(n); double < 0x1p64 && uint64(double) == n {
		return ""
	}
	return changedInteger(strconv.FormatUint(n, 10), float64(n))
}

func changedInteger(number string, double float64) string {
	return fmt.Sprintf("%s is past 2**53, and a protobuf Struct carries numbers as doubles, "+
		"which would change it to %s; send it as a string (or over HTTP, whose JSON keeps it)",
		number, big.NewFloat(double).Text('f', 0))
}

// payloadFromJSON reads a StoredDocument's payload_json (a read with exact
// payloads): the JSON object's numbers as written, an integer (no fraction or
// exponent) that an int64 holds as int64, so that one past 2**53 comes back
// exactly, and any other number as float64 (the nearest double).
func payloadFromJSON(text string) (map[string]any, error) {
	decoder := json.NewDecoder(strings.NewReader(text))
	decoder.UseNumber()
	var payload map[string]any
	if err := decoder.Decode(&payload); err != nil {
		return nil, err
	}
	if payload == nil {
		return nil, errors.New("null, not a JSON object")
	}
	if _, err := decoder.Token(); err != io.EOF {
		return nil, errors.New("text after the JSON object")
	}
	if _, err := exactNumbers(payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// exactNumbers replaces each json.Number in value (in place, in objects and
// arrays) by an int64 or a float64, and returns value so replaced.
func exactNumbers(value any) (any, error) {
	switch v := value.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil { // past the largest double: not a number a store holds
			return nil, fmt.Errorf("number %s: %w", v, err)
		}
		return f, nil
	case map[string]any:
		for key, item := range v {
			converted, err := exactNumbers(item)
			if err != nil {
				return nil, err
			}
			v[key] = converted
		}
	case []any:
		for i, item := range v {
			converted, err := exactNumbers(item)
			if err != nil {
				return nil, err
			}
			v[i] = converted
		}
	}
	return value, nil
}
