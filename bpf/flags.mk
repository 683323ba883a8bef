# Compiler and flags for BPF objects, shared by bpf/ and bench/bpf/.
CLANG ?= clang
# asm/types.h lives in the multiarch directory, which -target bpf does not search.
ARCH_INCLUDE := /usr/include/$(shell $(CC) -dumpmachine)
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -idirafter $(ARCH_INCLUDE)
