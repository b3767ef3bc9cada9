"""Words of the reports in English and Russian (the figures and titles come from the data)."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "TSCC Help Desk report",
        "centre": "Subregional Technical and Scientific Cooperation Support Centre for Central Asia "
        "(TSCC-CA)",
        "period": "Period",
        "timezone": "Time zone",
        "generated": "Generated",
        "summary": "Summary for the activity report",
        "output": "Output",
        "output_name": "Help desk/One-stop service centre established",
        "status": "Status",
        "details": "Details",
        "part3": "Figures for Part III (key achievements)",
        "headline": "Headline figures",
        "received": "Requests received",
        "resolved": "Requests resolved",
        "open_at_end": "Open at the end of the period",
        "unclassified": "Unclassified",
        "unclassified_share": "Unclassified share",
        "parties_served": "Parties served",
        "times": "Response and resolution times (hours)",
        "first_response": "First response",
        "resolution": "Resolution",
        "count": "Tickets",
        "median": "Median",
        "hours_unit": "h",
        "p90": "90th percentile",
        "response_target": "Response target",
        "within_target": "Handled within the target",
        "answered_late": "Answered after the target",
        "waiting_past_target": "Still waiting, past the target",
        "past_target": "Past the response target",
        "by_channel": "By channel",
        "by_party": "By Party",
        "by_target": "By KM-GBF target (primary)",
        "by_core_function": "By TSCC core function (primary)",
        "by_status": "By current status",
        "by_assignee": "By assignee",
        "by_month": "Requests received by month",
        "experts": "Experts and resources",
        "experts_proposed": "Roster experts proposed by the matcher",
        "tickets_with_proposals": "Requests with expert proposals",
        "experts_engaged": "Experts engaged (assigned a request they were proposed for)",
        "tickets_with_engaged_expert": "Requests handled by a proposed expert",
        "links_sent": "Resource links sent with acknowledgements",
        "distinct_resources": "Distinct resources sent",
        "tickets_with_resources": "Requests that received resources",
        "comparison": "Compared with the previous period",
        "previous": "Previous period",
        "this_period": "This period",
        "change": "Change",
        "examples": "Example requests (anonymised)",
        "key": "Key",
        "item": "Item",
        "share": "Share",
        "none": "none",
        "not_set": "not set",
        "unassigned": "unassigned",
        "no_data": "No requests in this period.",
        "definitions": "Definitions",
        "definitions_text": (
            "Received: tickets created in the period. Resolved: tickets whose resolution (or closing) falls "
            "in the period. Open at the end: created before the period ended and not resolved by then, as "
            "the tickets stand now (a ticket reopened later counts as open). Breakdowns and times cover the "
            "requests received in the period; resolution time covers the requests resolved in it. "
            "First response: the first staff reply (automatic acknowledgements do not count). The response "
            "target is met when staff replied, or the ticket was resolved, within the target. Target and "
            "core function: the first (primary) one of the classification. Experts proposed: distinct roster "
            "experts among the matches shown to staff; engaged: a proposed expert was assigned the request. "
            "Resources sent: links in the acknowledgements sent in the period. Days and months are counted "
            "in the Centre's time zone."
        ),
    },
    "ru": {
        "title": "Отчёт службы поддержки TSCC",
        "centre": "Субрегиональный центр поддержки научно-технического сотрудничества для Центральной Азии "
        "(TSCC-CA)",
        "period": "Период",
        "timezone": "Часовой пояс",
        "generated": "Подготовлен",
        "summary": "Сводка для отчёта о деятельности",
        "output": "Результат",
        "output_name": "Служба поддержки / единый центр обслуживания создан",
        "status": "Статус",
        "details": "Подробности",
        "part3": "Показатели для части III (ключевые достижения)",
        "headline": "Основные показатели",
        "received": "Получено запросов",
        "resolved": "Решено запросов",
        "open_at_end": "Открыто на конец периода",
        "unclassified": "Не классифицировано",
        "unclassified_share": "Доля неклассифицированных",
        "parties_served": "Стороны, получившие поддержку",
        "times": "Сроки ответа и решения (часы)",
        "first_response": "Первый ответ",
        "resolution": "Решение",
        "count": "Запросов",
        "median": "Медиана",
        "hours_unit": "ч",
        "p90": "90-й процентиль",
        "response_target": "Целевой срок ответа",
        "within_target": "Обработано в срок",
        "answered_late": "Ответ позже срока",
        "waiting_past_target": "Ждут ответа дольше срока",
        "past_target": "С превышением срока ответа",
        "by_channel": "По каналам",
        "by_party": "По Сторонам",
        "by_target": "По целевым задачам ГРП (основная)",
        "by_core_function": "По основным функциям TSCC (основная)",
        "by_status": "По текущему статусу",
        "by_assignee": "По исполнителям",
        "by_month": "Получено запросов по месяцам",
        "experts": "Эксперты и ресурсы",
        "experts_proposed": "Экспертов из реестра предложено",
        "tickets_with_proposals": "Запросов с предложенными экспертами",
        "experts_engaged": "Экспертов привлечено (назначены на запрос, для которого были предложены)",
        "tickets_with_engaged_expert": "Запросов, обработанных предложенным экспертом",
        "links_sent": "Ссылок на ресурсы отправлено с подтверждениями",
        "distinct_resources": "Различных ресурсов отправлено",
        "tickets_with_resources": "Запросов, получивших ресурсы",
        "comparison": "Сравнение с предыдущим периодом",
        "previous": "Предыдущий период",
        "this_period": "Этот период",
        "change": "Изменение",
        "examples": "Примеры запросов (обезличены)",
        "key": "Код",
        "item": "Показатель",
        "share": "Доля",
        "none": "нет",
        "not_set": "не указано",
        "unassigned": "не назначено",
        "no_data": "За этот период запросов не было.",
        "definitions": "Определения",
        "definitions_text": (
            "Получено: запросы, созданные в периоде. Решено: запросы, решённые (или закрытые) в периоде. "
            "Открыто на конец периода: созданы до конца периода и не решены к нему, по текущему состоянию "
            "(запрос, открытый повторно позже, считается открытым). Разбивки и сроки ответа относятся к "
            "запросам, полученным в периоде; срок решения — к запросам, решённым в нём. Первый ответ: первый "
            "ответ сотрудника (автоматические подтверждения не считаются). Срок соблюдён, если сотрудник "
            "ответил или запрос решён в пределах целевого срока. Задача и функция: первая (основная) в "
            "классификации. Предложенные эксперты: различные эксперты реестра среди предложенных "
            "сотрудникам; привлечённые: предложенный эксперт назначен исполнителем. Отправленные ресурсы: "
            "ссылки в подтверждениях, отправленных в периоде. Дни и месяцы считаются по часовому поясу "
            "Центра."
        ),
    },
}

CHANNELS = {
    "en": {"telegram": "Telegram", "email": "Email"},
    "ru": {"telegram": "Telegram", "email": "Электронная почта"},
}
STATUSES = {
    "en": {"new": "New", "open": "Open", "waiting": "Waiting", "resolved": "Resolved", "closed": "Closed"},
    "ru": {"new": "Новый", "open": "Открыт", "waiting": "Ожидает", "resolved": "Решён", "closed": "Закрыт"},
}
