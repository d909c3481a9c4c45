# train_bench: training throughput (pipeline on/off, time breakdown), FLOP/s against plain
# matrix products, and the MovieLens-100k peer configuration. Included from
# tools/bench/CMakeLists.txt: include(${CMAKE_CURRENT_SOURCE_DIR}/train.cmake)
if(TARGET pgraph_train)
  add_executable(train_bench ${CMAKE_CURRENT_LIST_DIR}/train_bench.cc)
  target_link_libraries(train_bench PRIVATE pgraph_train pgraph_storage TBB::tbb)
  target_compile_definitions(train_bench PRIVATE PGRAPH_SHARED_DATA="${PGRAPH_SHARED_DATA}")
endif()
