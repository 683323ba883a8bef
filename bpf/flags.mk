# Compiler and flags for BPF objects, shared by bpf/ and bench/bpf/.
CLANG ?= clang
# asm/types.h lives in the multiarch directory, which -target bpf does not search.
# Ask clang itself for it (x86_64-linux-gnu): `cc -dumpmachine` is only right
# where cc is gcc; with clang as cc (an image without gcc) it is x86_64-pc-linux-gnu.
ARCH_INCLUDE := /usr/include/$(shell $(CLANG) -print-multiarch)
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -idirafter $(ARCH_INCLUDE)
