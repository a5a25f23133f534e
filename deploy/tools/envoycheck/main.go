// Command envoycheck validates Envoy bootstrap files against Envoy's own API: each file is
// decoded into the v3 Bootstrap message (unknown fields and types are errors), and every
// message in it, including those packed in typed_config, is checked with the field rules
// (protoc-gen-validate) that Envoy itself applies when it loads a configuration.
//
//	go run . ../../../docker/envoy.yaml
package main

import (
	"errors"
	"fmt"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	// The extensions the project's configurations name in typed_config.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

type validator interface{ ValidateAll() error }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: envoycheck FILE.yaml ...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: valid Envoy v3 bootstrap\n", path)
	}
	if failed {
		os.Exit(1)
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	asJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return err
	}
	var bootstrap bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(asJSON, &bootstrap); err != nil {
		return err
	}
	return validate(&bootstrap)
}

// validate applies a message's rules, then those of every Any inside it, which the
// generated ValidateAll does not open.
func validate(msg proto.Message) error {
	var errs []error
	if v, ok := msg.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walk(msg.ProtoReflect(), func(any *anypb.Any) {
		inner, err := any.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", any.GetTypeUrl(), err))
			return
		}
		if err := validate(inner); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", any.GetTypeUrl(), err))
		}
	})
	return errors.Join(errs...)
}

// walk calls found for each Any reachable from m without passing through another Any.
func walk(m protoreflect.Message, found func(*anypb.Any)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		visit := func(child protoreflect.Message) {
			if any, ok := child.Interface().(*anypb.Any); ok {
				found(any)
				return
			}
			walk(child, found)
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				visit(v.List().Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(mv.Message())
					return true
				})
			}
		default:
			visit(v.Message())
		}
		return true
	})
}
