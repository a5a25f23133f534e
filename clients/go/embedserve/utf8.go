package embedserve

// Strings that are no text: a Go string holds any bytes, and protobuf refuses
// one that is not UTF-8 only when grpc marshals the message, as an Internal
// error that names neither the field nor where in it the bad byte is. The
// client refuses such a string before sending, with codes.InvalidArgument.

import (
	"context"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// utf8Problem says why s is not UTF-8 text ("is not UTF-8 (byte 0xff at byte
// offset 3)", to follow the name of where s came from), or "" when it is.
func utf8Problem(s string) string {
	if utf8.ValidString(s) {
		return ""
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 { // a written U+FFFD is 3 bytes
			return fmt.Sprintf("is not UTF-8 (byte 0x%02x at byte offset %d)", s[i], i)
		}
		i += size
	}
	return ""
}

// textsError refuses the first of texts that is not UTF-8, by its position:
// "embedserve: text 3 is not UTF-8 (...)", what ("batch 2: ") before it.
func textsError(what string, texts []string) error {
	for i, text := range texts {
		if problem := utf8Problem(text); problem != "" {
			return status.Errorf(codes.InvalidArgument, "embedserve: %stext %d %s", what, i, problem)
		}
	}
	return nil
}

// notUTF8 is a payload check for findInPayload: a string, or an object's key,
// that is not UTF-8 (structpb refuses both, naming neither the key nor where).
func notUTF8(value any, _ int) string {
	switch v := value.(type) {
	case string:
		return utf8Problem(v)
	case map[string]any:
		for key := range v {
			if problem := utf8Problem(key); problem != "" {
				return fmt.Sprintf("key %q %s", key, problem)
			}
		}
	}
	return ""
}

// messageError refuses a message holding a string that is not UTF-8, naming
// its field as a path of the message: "embedserve: filter.must[0].match.text
// is not UTF-8 (...)". The client's interceptors pass every request here, so
// that the stubs' calls (Stub, VectorStub) are checked too.
func messageError(m proto.Message) error {
	if path, problem := utf8InMessage(m.ProtoReflect()); problem != "" {
		return status.Errorf(codes.InvalidArgument, "embedserve: %s %s", path, problem)
	}
	return nil
}

// utf8InMessage returns the path and problem of the first string in m (its
// map keys included) that is not UTF-8, or "", "". Paths are made only on the
// way back from a problem: most messages have none.
func utf8InMessage(m protoreflect.Message) (path, problem string) {
	m.Range(func(field protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(field.Name())
		switch {
		case field.IsMap():
			if k := field.MapValue().Kind(); field.MapKey().Kind() != protoreflect.StringKind && k != protoreflect.StringKind && k != protoreflect.MessageKind {
				return true
			}
			v.Map().Range(func(key protoreflect.MapKey, item protoreflect.Value) bool {
				if field.MapKey().Kind() == protoreflect.StringKind {
					if problem = utf8Problem(key.String()); problem != "" {
						path = fmt.Sprintf("%s key %q", name, key.String())
						return false
					}
				}
				var inner string
				if inner, problem = utf8InValue(field.MapValue(), item); problem != "" {
					path = fmt.Sprintf("%s[%q]%s", name, key.String(), inner)
				}
				return problem == ""
			})
		case field.IsList():
			if k := field.Kind(); k != protoreflect.StringKind && k != protoreflect.MessageKind && k != protoreflect.GroupKind {
				return true // numbers: a vector's values
			}
			list := v.List()
			for i := 0; i < list.Len(); i++ {
				var inner string
				if inner, problem = utf8InValue(field, list.Get(i)); problem != "" {
					path = name + "[" + strconv.Itoa(i) + "]" + inner
					break
				}
			}
		default:
			var inner string
			if inner, problem = utf8InValue(field, v); problem != "" {
				path = name + inner
			}
		}
		return problem == ""
	})
	return path, problem
}

// utf8InValue is utf8InMessage for one value of field: "" and the problem of a
// string, ".path" and the problem of a message.
func utf8InValue(field protoreflect.FieldDescriptor, v protoreflect.Value) (string, string) {
	switch field.Kind() {
	case protoreflect.StringKind:
		return "", utf8Problem(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if path, problem := utf8InMessage(v.Message()); problem != "" {
			return "." + path, problem
		}
	}
	return "", ""
}

// utf8UnaryInterceptor refuses a request holding a string that is not UTF-8
// before it is sent (messageError).
func utf8UnaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m, ok := req.(proto.Message); ok {
		if err := messageError(m); err != nil {
			return err
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// utf8StreamInterceptor refuses each message of a stream holding a string
// that is not UTF-8 before it is sent: its Send returns the error, as it
// returns grpc's own when a message cannot be marshalled.
func utf8StreamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	stream, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return utf8Stream{stream}, nil
}

type utf8Stream struct{ grpc.ClientStream }

func (s utf8Stream) SendMsg(m any) error {
	if message, ok := m.(proto.Message); ok {
		if err := messageError(message); err != nil {
			return err
		}
	}
	return s.ClientStream.SendMsg(m)
}
