//go:build ttrpc12

package main

import (
	"context"
	"io"

	"github.com/containerd/ttrpc"
	anypb "github.com/golang/protobuf/ptypes/any"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const version = "1.2"

type msg = wrapperspb.BytesValue

func newMsg(b []byte) *msg { return &wrapperspb.BytesValue{Value: b} }

// failStatus carries a detail so that Any round-trips are checked too (built by hand: the
// Any type URL that Debian's grpc WithDetails makes here lacks the message name).
func failStatus(code codes.Code, m string) error {
	v, err := proto.Marshal(wrapperspb.String("detail"))
	if err != nil {
		return err
	}
	return status.ErrorProto(&spb.Status{Code: int32(code), Message: m, Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: v}}})
}

func registerStreams(s *ttrpc.Server) {
	s.RegisterService(service+"Streams", &ttrpc.ServiceDesc{
		Streams: map[string]ttrpc.Stream{
			// client-streaming: sum of all bytes received
			"Sum": {StreamingClient: true, Handler: func(ctx context.Context, ss ttrpc.StreamServer) (interface{}, error) {
				sum := 0
				for {
					m := newMsg(nil)
					if err := ss.RecvMsg(m); err == io.EOF {
						break
					} else if err != nil {
						return nil, err
					}
					for _, b := range m.Value {
						sum += int(b)
					}
				}
				return newMsg([]byte{byte(sum)}), nil
			}},
			// server-streaming: n messages 0..n-1 for a request of one byte n
			"Count": {StreamingServer: true, Handler: func(ctx context.Context, ss ttrpc.StreamServer) (interface{}, error) {
				req := newMsg(nil)
				if err := ss.RecvMsg(req); err != nil {
					return nil, err
				}
				for i := 0; i < int(req.Value[0]); i++ {
					if err := ss.SendMsg(newMsg([]byte{byte(i)})); err != nil {
						return nil, err
					}
				}
				return nil, nil
			}},
		},
	})
}

func streamChecks(c *ttrpc.Client, res map[string]Result) {
	ctx := context.Background()
	st, err := c.NewStream(ctx, &ttrpc.StreamDesc{StreamingClient: true}, service+"Streams", "Sum", nil)
	if err != nil {
		res["stream-sum"] = resultOf(nil, err)
	} else {
		st.SendMsg(newMsg([]byte{1, 2}))
		st.SendMsg(newMsg([]byte{3}))
		st.CloseSend()
		out := newMsg(nil)
		res["stream-sum"] = resultOf(out, st.RecvMsg(out))
	}
	st, err = c.NewStream(ctx, &ttrpc.StreamDesc{StreamingServer: true}, service+"Streams", "Count", newMsg([]byte{3}))
	if err != nil {
		res["stream-count"] = resultOf(nil, err)
		return
	}
	var got []byte
	for {
		out := newMsg(nil)
		err := st.RecvMsg(out)
		if err == io.EOF {
			break
		} else if err != nil {
			res["stream-count"] = resultOf(nil, err)
			return
		}
		got = append(got, out.Value...)
	}
	res["stream-count"] = Result{Value: string(got), Len: len(got)}
}
