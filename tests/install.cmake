# install.cmake — install vmalloc into a scratch prefix and build the paper's
# figures against what was installed, the ways a user would:
#   (a) cc with `pkg-config --cflags --libs vmalloc`, and once with the
#       static library;
#   (b) a CMake project with find_package(vmalloc) and vmalloc::vmalloc.
# Every program is run and must exit 0. Any failure stops with its output.
#
# Run as: cmake -DSRC=<source dir> -DBIN=<scratch dir> -DGEN=<generator> -P install.cmake

foreach(v SRC BIN GEN)
  if(NOT ${v})
    message(FATAL_ERROR "install.cmake: -D${v}=... is required")
  endif()
endforeach()

# Run a command; stop with its output if it fails.
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "install test: ${what} failed (${rc})\n  ${cmd}\n${out}\n${err}")
  endif()
  set(step_out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${BIN}")
file(MAKE_DIRECTORY "${BIN}")
set(prefix "${BIN}/prefix")

step("configure" ${CMAKE_COMMAND} -S "${SRC}" -B "${BIN}/build" -G "${GEN}"
  -DVMALLOC_TESTS=OFF -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=${prefix}")
step("build" ${CMAKE_COMMAND} --build "${BIN}/build" --parallel 2)
step("install" ${CMAKE_COMMAND} --install "${BIN}/build")

file(GLOB pcfiles "${prefix}/lib*/pkgconfig/vmalloc.pc")
if(NOT pcfiles)
  message(FATAL_ERROR "install test: no vmalloc.pc under ${prefix}/lib*/pkgconfig")
endif()
list(GET pcfiles 0 pc)
get_filename_component(pcdir "${pc}" DIRECTORY)
get_filename_component(libdir "${pcdir}" DIRECTORY)
foreach(f "${prefix}/include/vmalloc.h" "${libdir}/libvmalloc.a" "${libdir}/cmake/vmalloc/vmallocConfig.cmake")
  if(NOT EXISTS "${f}")
    message(FATAL_ERROR "install test: ${f} was not installed")
  endif()
endforeach()

# (a) pkg-config
find_program(PKG_CONFIG NAMES pkg-config REQUIRED)
find_program(CC NAMES cc gcc REQUIRED)
step("pkg-config" ${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${pcdir}"
  ${PKG_CONFIG} --cflags --libs vmalloc)
string(STRIP "${step_out}" pkgflags)
separate_arguments(pkgflags UNIX_COMMAND "${pkgflags}")
if(NOT pkgflags MATCHES "-lvmalloc")
  message(FATAL_ERROR "install test: pkg-config gave '${pkgflags}', no -lvmalloc")
endif()

file(GLOB figs "${SRC}/examples/fig*.c")
if(NOT figs)
  message(FATAL_ERROR "install test: no examples/fig*.c in ${SRC}")
endif()
foreach(src IN LISTS figs)
  get_filename_component(name "${src}" NAME_WE)
  step("cc ${name}.c with pkg-config" ${CC} "${src}" -o "${BIN}/${name}" ${pkgflags})
  step("run ${name}" ${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${libdir}" "${BIN}/${name}")
  message(STATUS "${name} (pkg-config): ok")
endforeach()

# The static library needs nothing at run time.
step("cc fig1 with libvmalloc.a" ${CC} "${SRC}/examples/fig1_region.c" -o "${BIN}/fig1_static"
  "-I${prefix}/include" "${libdir}/libvmalloc.a" -pthread)
step("run fig1_static" "${BIN}/fig1_static")
message(STATUS "fig1_region (static): ok")

# (b) find_package
set(proj "${BIN}/consumer")
file(MAKE_DIRECTORY "${proj}")
file(WRITE "${proj}/CMakeLists.txt" "cmake_minimum_required(VERSION 3.16)
project(vmalloc_consumer C)
find_package(vmalloc 0.1 REQUIRED)
add_executable(fig1 \"${SRC}/examples/fig1_region.c\")
target_link_libraries(fig1 PRIVATE vmalloc::vmalloc)
")
step("configure the find_package project" ${CMAKE_COMMAND} -S "${proj}" -B "${proj}/build"
  -G "${GEN}" "-DCMAKE_PREFIX_PATH=${prefix}")
step("build the find_package project" ${CMAKE_COMMAND} --build "${proj}/build")
step("run fig1 (find_package)" ${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${libdir}"
  "${proj}/build/fig1")
message(STATUS "fig1_region (find_package): ok")
