# Makefile — a thin wrapper over CMake, for the two commands of the README.
#
#   make          configure and build into build/, then run the paper's figures
#   make study    the allocator study: traces recorded, replayed, report in out/study/
#   make check    three builds, each with its tests, stopping at the first failure:
#                   build/       warnings are errors; every test
#                   build-asan/  AddressSanitizer + UBSan; every test but test_install
#                   build-tsan/  ThreadSanitizer; the tests labelled "threads"
#   make clean    remove the three build directories
#
# JOBS sets the parallelism of builds and tests (default 2).

CMAKE ?= cmake
CTEST ?= ctest
JOBS ?= 2
CTEST_FLAGS = --output-on-failure -j$(JOBS)
EXAMPLES = fig1_region fig2_heapmem fig3_mmapdisc

.PHONY: all build study check check-normal check-asan check-tsan clean

all: build

build:
	$(CMAKE) -S . -B build
	$(CMAKE) --build build -j$(JOBS)
	@for f in $(EXAMPLES); do echo "== examples/$$f"; ./build/examples/$$f || exit 1; done

# The allocator study (the paper's section 3): record, replay, report in out/study/.
study:
	$(CMAKE) -S . -B build
	$(CMAKE) --build build -j$(JOBS)
	./tools/vmstudy --no-build --build build --out out/study

# Sequential on purpose: the first failing stage stops the run.
check:
	$(MAKE) check-normal
	$(MAKE) check-asan
	$(MAKE) check-tsan
	@echo "make check: all three builds passed"

check-normal:
	$(CMAKE) -S . -B build -DVMALLOC_WERROR=ON
	$(CMAKE) --build build -j$(JOBS)
	cd build && $(CTEST) $(CTEST_FLAGS)

check-asan:
	$(CMAKE) -S . -B build-asan -DVMALLOC_SANITIZE=ON -DVMALLOC_MALLOC=OFF
	$(CMAKE) --build build-asan -j$(JOBS)
	cd build-asan && $(CTEST) $(CTEST_FLAGS) -E '^test_install$$'

check-tsan:
	$(CMAKE) -S . -B build-tsan -DVMALLOC_TSAN=ON -DVMALLOC_MALLOC=OFF
	$(CMAKE) --build build-tsan -j$(JOBS)
	cd build-tsan && $(CTEST) $(CTEST_FLAGS) -L threads

clean:
	rm -rf build build-asan build-tsan
