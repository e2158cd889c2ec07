#include "agent/executor/command_events.h"

#include <algorithm>

namespace ecliptix::agent {

std::vector<fleet::v1::QueryRows> ToQueryRows(const OperationResult& result,
                                              size_t rows_per_message,
                                              int64_t more_truncated) {
  rows_per_message = std::max<size_t>(1, rows_per_message);
  std::vector<fleet::v1::QueryRows> messages;
  size_t next = 0;
  do {
    fleet::v1::QueryRows& message = messages.emplace_back();
    for (const std::string& column : result.columns)
      message.add_columns(column);
    const size_t end = std::min(result.rows.size(), next + rows_per_message);
    for (; next < end; ++next) {
      fleet::v1::QueryRow* row = message.add_rows();
      const std::vector<std::string>& values = result.rows[next];
      for (size_t i = 0; i < values.size(); ++i) {
        fleet::v1::QueryValue* value = row->add_values();
        const bool null = next < result.nulls.size() &&
                          i < result.nulls[next].size() &&
                          result.nulls[next][i];
        if (null) {
          value->set_null_value(true);
        } else {
          value->set_text(values[i]);
        }
      }
    }
  } while (next < result.rows.size());
  messages.back().set_last(true);
  messages.back().set_rows_truncated(result.rows_left_out + more_truncated);
  return messages;
}

}  // namespace ecliptix::agent
