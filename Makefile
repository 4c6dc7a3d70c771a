# ptune build. `make` leaves ./ptune; `make test` runs the whole suite;
# `make demo` installs what is missing, builds and runs the main job.
CC      ?= cc
OPT     ?= -O2 -march=native
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wdouble-promotion -Wno-unused-parameter
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fopenmp -Iinclude -Isrc $(shell pkg-config --cflags openblas jansson libpcre2-8 cairo 2>/dev/null)
LDLIBS  += -lopenblas -llapacke -ljansson -lpcre2-8 -lcairo -lpng -lz -lm -fopenmp -lpthread
BUILD   ?= build
# oneDNN (Debian libdnnl-dev) gives the bf16 backends; without it ptune builds
# fp32 only and says so. DNNL=0 leaves it out on purpose.
DNNL    ?= $(shell test -f /usr/include/oneapi/dnnl/dnnl.h && echo 1 || echo 0)
ifeq ($(DNNL),1)
CFLAGS  += -DPT_HAVE_DNNL
LDLIBS  += -ldnnl
endif

# Open MPI (Debian libopenmpi-dev) gives `mpirun -np K ptune ...` (docs/scaling.md);
# without it ptune builds single-process and says so under a launcher. MPI=0
# leaves it out on purpose.
MPI     ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
CFLAGS  += -DPT_HAVE_MPI $(shell pkg-config --cflags ompi-c)
LDLIBS  += $(shell pkg-config --libs ompi-c)
endif

SRC      := $(sort $(wildcard src/*/*.c))
LIBSRC   := $(filter-out src/cli/%,$(SRC))
CLISRC   := $(filter src/cli/%,$(SRC))
LIBOBJ   := $(LIBSRC:%.c=$(BUILD)/%.o)
CLIOBJ   := $(CLISRC:%.c=$(BUILD)/%.o)
TESTSRC  := $(sort $(wildcard tests/test_*.c))
TESTBIN  := $(TESTSRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test test-fast asan demo setup clean bench
all: ptune

ptune: $(BUILD)/libptune.a $(CLIOBJ)
	$(CC) $(CFLAGS) -o $@ $(CLIOBJ) $(BUILD)/libptune.a $(LDLIBS)

$(BUILD)/libptune.a: $(LIBOBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c $(wildcard include/ptune/*.h) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/pt_test.h tests/pt_test_model.h $(BUILD)/libptune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libptune.a $(LDLIBS)

tests: $(TESTBIN)

setup:
	@bash scripts/setup.sh

# The whole suite: normal build, then the fast unit tests again under ASan+UBSan.
test: setup
	@bash scripts/setup-corpus.sh
	$(MAKE) ptune tests
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow" tests
	@bash tests/run.sh

# Tests only, no setup (for development).
test-fast: ptune tests
	@PT_NO_ASAN=1 bash tests/run.sh

demo: setup
	$(MAKE) ptune
	@bash scripts/demo.sh

bench: ptune
	@bash bench/run.sh

clean:
	rm -rf build build-asan ptune
