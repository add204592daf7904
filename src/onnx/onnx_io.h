/* onnx: internal interface between the protobuf-c generated code and the IR. */
#ifndef OQ_ONNX_IO_H
#define OQ_ONNX_IO_H

#include "ir/graph.h"
#include "onnx/onnx.pb-c.h"

oq_status oq_read_file(const char *path, uint8_t **data, size_t *size);
/* Structure checks and topological sort of the main graph and every subgraph. */
oq_status oq_model_validate(oq_model *m);


/* Reads a serialized TensorProto file (the ONNX test-data .pb format). */
oq_status oq_tensor_proto_load(const char *path, oq_tensor **out);
#endif
