# exports.cmake — what libvmalloc.so exports: the public API of vmalloc.h,
# and the malloc interface exactly when it was built with it.
# Run as: cmake -DLIB=path/to/libvmalloc.so -DMALLOC=ON|OFF -P exports.cmake
#
# With MALLOC=OFF it fails if the library defines any malloc-family symbol (a
# program linked with it keeps libc's malloc); with MALLOC=ON it fails if any
# of them (or the exec wrappers that flush traces) is missing. Either way it
# fails if the library exports a function or object whose name is not public
# (vm/Vm followed by a lower-case letter, _vmnewof, _vmflinfo), or if a name of
# the API is missing (which would also mean the nm output was not understood).

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
  aligned_alloc valloc pvalloc malloc_usable_size mallopt malloc_trim mallinfo2 malloc_stats
  execve execv execvp execvpe execl execlp execle _exit _Exit)
set(api vmopen vmclose vmclear vmcompact vmalloc vmalign vmfree vmresize vmstat vmaddr
  vmsize vmregion vmset vmstrdup vmdbcheck vmdbwatch vmprofile vmtrace vmsegment vmwalk
  vmdisc _vmnewof _vmflinfo Vmbest Vmpool Vmlast Vmdebug Vmprofile Vmdcsystem Vmdcsbrk Vmdcheap
  Vmheap Vmregion
  vmcurrent vmglobal vmenter vmleave vmnew vmescape vmescape_list vmimport vmswitch vmtxn_begin
  vmtxn_commit vmtxn_abort vmtxn_end vmdestructor vmheap_open vmheap_close vmparent vmunwind
  vmmust vmscope_malloc Vmscope)

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
    if(NOT MALLOC)
      string(APPEND errors "  defines the malloc-family symbol '${name}' (type ${type})\n")
    endif()
  elseif(NOT name MATCHES "^[vV]m[a-z]" AND NOT name STREQUAL "_vmnewof"
         AND NOT name STREQUAL "_vmflinfo")
    string(APPEND errors "  exports the non-public symbol '${name}' (type ${type})\n")
  endif()
endforeach()
if(MALLOC)
  list(APPEND api ${malloc_family})
endif()
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
if(MALLOC)
  message(STATUS "${LIB}: ${n} exported symbols: the public API and the malloc interface")
else()
  message(STATUS "${LIB}: ${n} exported symbols, all public, no malloc family")
endif()
