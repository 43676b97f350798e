# exports.cmake — what libvmalloc.so exports: the public API of vmalloc.h and
# nothing else. Run as: cmake -DLIB=path/to/libvmalloc.so -P exports.cmake
#
# Fails if the library defines any malloc-family symbol (in this issue a
# program linked with vmalloc keeps libc's malloc), if it exports a function
# or object whose name is not public (vm/Vm followed by a lower-case letter,
# or _vmnewof), or if a name of the API is missing (which would also mean
# the nm output was not understood).

if(NOT LIB OR NOT EXISTS "${LIB}")
  message(FATAL_ERROR "exports.cmake: LIB='${LIB}' is not a file")
endif()
find_program(NM NAMES nm REQUIRED)
execute_process(COMMAND ${NM} -D --defined-only "${LIB}"
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm -D failed on ${LIB}: ${err}")
endif()

set(malloc_family malloc free calloc realloc reallocarray memalign posix_memalign
  aligned_alloc valloc pvalloc malloc_usable_size)
set(api vmopen vmclose vmclear vmcompact vmalloc vmalign vmfree vmresize vmstat vmaddr
  vmsize vmregion vmset vmstrdup vmdbcheck vmdbwatch vmprofile vmtrace vmsegment vmwalk
  vmdisc _vmnewof Vmbest Vmpool Vmlast Vmdebug Vmprofile Vmdcsystem Vmdcsbrk Vmdcheap
  Vmheap Vmregion)

string(REPLACE "\n" ";" lines "${out}")
set(errors "")
set(seen "")
foreach(line IN LISTS lines)
  # "<address> <type> <name>[@@version]"; absolute symbols (type A) are the
  # ELF's version nodes, not code or data.
  if(NOT line MATCHES "^[0-9a-fA-F]* *([A-Za-z]) ([^ @]+)")
    continue()
  endif()
  set(type "${CMAKE_MATCH_1}")
  set(name "${CMAKE_MATCH_2}")
  if(type STREQUAL "A")
    continue()
  endif()
  list(APPEND seen "${name}")
  list(FIND malloc_family "${name}" i)
  if(NOT i EQUAL -1)
    string(APPEND errors "  defines the malloc-family symbol '${name}' (type ${type})\n")
  elseif(NOT name MATCHES "^[vV]m[a-z]" AND NOT name STREQUAL "_vmnewof")
    string(APPEND errors "  exports the non-public symbol '${name}' (type ${type})\n")
  endif()
endforeach()
foreach(name IN LISTS api)
  list(FIND seen "${name}" i)
  if(i EQUAL -1)
    string(APPEND errors "  does not export '${name}' of the public API\n")
  endif()
endforeach()

if(errors)
  message(FATAL_ERROR "${LIB}:\n${errors}")
endif()
list(LENGTH seen n)
message(STATUS "${LIB}: ${n} exported symbols, all public, no malloc family")
