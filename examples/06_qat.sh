#!/usr/bin/env bash
# Seed experiment 6: quantization-aware training as the remedy when accuracy drops. The Fashion-MNIST CNN is trained
# in float, fine-tuned with PyTorch 1.13's QAT (prepare_qat, one epoch, convert) and exported to ONNX (QDQ); onnxq
# runs it on integer kernels. Top-1 on the full 10,000-image test set, next to onnxq's post-training static result
# for the same float model.
source "$(dirname "$0")/common.sh"
scripts/install-deps.sh --e2e >/dev/null
[[ -f "$W/cnn_qat.onnx" ]] || $PY scripts/qat_fmnist.py "$W" | tail -1
"$ONNXQ" quantize "$W/cnn_float.onnx" "$W/cnn_ptq.onnx" --calib "$W/test_x.npy" --samples 200 -q >/dev/null
"$ONNXQ" eval "$W/cnn_float.onnx" "$W/cnn_ptq.onnx" "$W/cnn_qat.onnx" --data "$W/test_x.npy" --labels "$W/test_y.npy" \
    --threads "$THREADS" --report "$W/eval.json" -q >/dev/null
fused=$(ONNXQ_LOG=info "$ONNXQ" run "$W/cnn_qat.onnx" --random 2>&1 >/dev/null | sed -n 's/.*fuse_qdq: graph [^:]*: //p')
echo "Fashion-MNIST CNN, 10,000 test images"
printf '%-24s %8s %8s %9s\n' model top1 top5 size_KB
for i in 0 1 2; do
  printf '%-24s %7.2f%% %7.2f%% %9.1f\n' "$(echo "float ptq_static_onnxq qat_pytorch" | cut -d' ' -f$((i + 1)))" \
    "$(jget "$W/eval.json" "100*r['models'][$i]['top1']")" "$(jget "$W/eval.json" "100*r['models'][$i]['top5']")" \
    "$(jget "$W/eval.json" "r['models'][$i]['bytes']/1024")"
done
echo "QAT model in onnxq: $fused"
