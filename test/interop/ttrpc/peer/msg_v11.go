//go:build !ttrpc12

package main

import (
	"context"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
	anypb "github.com/golang/protobuf/ptypes/any"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const version = "1.1"

type msg = types.BytesValue

func newMsg(b []byte) *msg { return &types.BytesValue{Value: b} }

// failStatus carries a detail (a StringValue "detail") so that Any round-trips are checked too.
func failStatus(code codes.Code, m string) error {
	return status.ErrorProto(&spb.Status{Code: int32(code), Message: m, Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: []byte("\n\x06detail")}}})
}

func registerStreams(s *ttrpc.Server) {}

func streamChecks(c *ttrpc.Client, res map[string]Result) { _ = context.Background }
