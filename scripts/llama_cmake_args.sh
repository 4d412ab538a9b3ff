#!/bin/sh
# CMake flags for building llama-cpp-python on this CPU. The default native build crashed at the
# first decode on these machines, and a build with AVX-512 dies with "Illegal instruction" on a CPU
# without it, so we turn on exactly the instruction sets /proc/cpuinfo reports.
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { case "$flags" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
args="-DGGML_NATIVE=OFF"
has avx && args="$args -DGGML_AVX=ON"
has avx2 && args="$args -DGGML_AVX2=ON"
has fma && args="$args -DGGML_FMA=ON"
has f16c && args="$args -DGGML_F16C=ON"
if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd; then
  args="$args -DGGML_AVX512=ON"
  has avx512_vnni && args="$args -DGGML_AVX512_VNNI=ON"
  has avx512vbmi && args="$args -DGGML_AVX512_VBMI=ON"
  has avx512_bf16 && args="$args -DGGML_AVX512_BF16=ON"
fi
echo "$args"
